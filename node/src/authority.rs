//! Connections of the client port, made acceptable to the HTTP/2 server whatever `:authority`
//! the client sends.
//!
//! The official Python client, given several access points, connects to `ipv4:a:p1,b:p2` and
//! sends that list as the `:authority` of every request. The RocketMQ proxy ignores the field;
//! the `h2` crate refuses a request whose `:authority` is not a valid `host:port`
//! (RST_STREAM PROTOCOL_ERROR), and offers no switch. So the client port reads HTTP/2 through
//! [`AuthorityFix`]: it decodes each request's header block (HPACK), drops an `:authority` that
//! is not a valid authority (no handler reads it), and encodes the block again for the server.
//! Every other frame passes through untouched. A connection that does not open with the HTTP/2
//! preface (HTTP/1.1, `GET /metrics`) passes through entirely.
//!
//! Every header block is re-encoded, not only the bad ones: HPACK keeps a table per direction,
//! and the server's decoder must stay in step with the encoder that wrote what it reads (ours).

use std::io;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;
use std::task::ready;

use bytes::Buf;
use bytes::BufMut;
use bytes::BytesMut;
use loona_hpack::Decoder;
use loona_hpack::Encoder;
use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;
use tonic::codegen::http::uri::Authority;
use tonic::transport::server::Connected;

/// What a client sends first on an HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload a peer may send before SETTINGS say otherwise, which our frames keep to.
const FRAME_MAX: usize = 16_384;
/// Largest header block collected (HEADERS plus CONTINUATION frames); more closes the connection.
const BLOCK_MAX: usize = 1 << 20;
/// HPACK dynamic table size the server's decoder starts with, and the most a client may ask for
/// (the server advertises no other SETTINGS_HEADER_TABLE_SIZE).
const TABLE_MAX: usize = 4096;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 << 10;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// How the bytes of a connection are read.
enum Mode {
    /// Not known yet: waiting for the first bytes to compare with the HTTP/2 preface.
    Sniff,
    /// HTTP/2: header blocks are re-encoded, other frames pass.
    Frames(Box<Hpack>),
    /// Anything else: every byte passes.
    Pass,
}

/// The two HPACK contexts of the client-to-server direction: the client's (we decode with it)
/// and the server's (we encode with it).
struct Hpack {
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
}

/// A header block being collected: its HEADERS frame came without END_HEADERS.
struct Block {
    stream: u32,
    /// END_STREAM of the HEADERS frame, kept for the frame we write.
    end_stream: bool,
    fragment: Vec<u8>,
}

/// A client connection whose HTTP/2 header blocks reach the server with a valid `:authority` or
/// none. Writes pass straight to the socket.
pub struct AuthorityFix<IO> {
    io: IO,
    mode: Mode,
    /// Bytes read from `io`: `buf[..ready]` is ready for the server, the rest is not looked at yet.
    buf: BytesMut,
    ready: usize,
    /// Payload bytes of a passing frame still to come.
    passing: usize,
    block: Option<Block>,
}

impl<IO> AuthorityFix<IO> {
    /// Wraps a freshly accepted connection.
    pub fn new(io: IO) -> Self {
        Self { io, mode: Mode::Sniff, buf: BytesMut::new(), ready: 0, passing: 0, block: None }
    }

    /// Looks at the bytes read so far: moves `ready` forward over what may go to the server,
    /// re-encoding header blocks on the way.
    fn process(&mut self) -> io::Result<()> {
        if let Mode::Sniff = self.mode {
            let n = self.buf.len().min(PREFACE.len());
            if self.buf[..n] != PREFACE[..n] {
                self.mode = Mode::Pass;
            } else if n == PREFACE.len() {
                self.ready = n;
                let mut hpack = Hpack { decoder: Decoder::new(), encoder: Encoder::new() };
                hpack.decoder.set_max_allowed_table_size(TABLE_MAX);
                self.mode = Mode::Frames(Box::new(hpack));
            } else {
                return Ok(());
            }
        }
        let hpack = match &mut self.mode {
            Mode::Sniff => return Ok(()),
            Mode::Pass => {
                self.ready = self.buf.len();
                return Ok(());
            }
            Mode::Frames(h) => h,
        };
        loop {
            let avail = self.buf.len() - self.ready;
            if self.passing > 0 {
                let n = self.passing.min(avail);
                if n == 0 {
                    return Ok(());
                }
                self.ready += n;
                self.passing -= n;
                continue;
            }
            if avail < FRAME_HEADER {
                return Ok(());
            }
            let h = &self.buf[self.ready..self.ready + FRAME_HEADER];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            let (kind, flags) = (h[3], h[4]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            let is_block = kind == HEADERS || kind == CONTINUATION;
            if let Some(b) = &self.block
                && (kind != CONTINUATION || stream != b.stream)
            {
                return Err(invalid("http/2: a header block was interrupted by another frame"));
            }
            if !is_block {
                self.passing = FRAME_HEADER + len;
                continue;
            }
            if kind == CONTINUATION && self.block.is_none() {
                return Err(invalid("http/2: CONTINUATION without a header block"));
            }
            if avail < FRAME_HEADER + len {
                if len > BLOCK_MAX {
                    return Err(invalid(format!("http/2: header frame of {len} bytes")));
                }
                return Ok(());
            }
            // Take the frame out of the buffer; what replaces it is written at `ready`.
            let rest = self.buf.split_off(self.ready + FRAME_HEADER + len);
            let frame = self.buf.split_off(self.ready);
            let payload = &frame[FRAME_HEADER..];
            let block = self.block.get_or_insert_with(|| Block {
                stream,
                end_stream: flags & END_STREAM != 0,
                fragment: Vec::new(),
            });
            block.fragment.extend_from_slice(fragment_of(kind, flags, payload)?);
            if block.fragment.len() > BLOCK_MAX {
                return Err(invalid("http/2: header block too large"));
            }
            if flags & END_HEADERS != 0
                && let Some(b) = self.block.take()
            {
                let encoded = reencode(hpack, &b.fragment)?;
                let before = self.buf.len();
                write_block(&mut self.buf, b.stream, b.end_stream, &encoded);
                self.ready += self.buf.len() - before;
            }
            self.buf.unsplit(rest);
        }
    }
}

/// The header block fragment of a HEADERS or CONTINUATION frame's payload (without padding and
/// priority fields).
fn fragment_of(kind: u8, flags: u8, payload: &[u8]) -> io::Result<&[u8]> {
    if kind == CONTINUATION {
        return Ok(payload);
    }
    let mut p = payload;
    let mut pad = 0usize;
    if flags & PADDED != 0 {
        let (&n, tail) = p.split_first().ok_or_else(|| invalid("http/2: HEADERS padding missing"))?;
        pad = usize::from(n);
        p = tail;
    }
    if flags & PRIORITY != 0 {
        p = p.get(5..).ok_or_else(|| invalid("http/2: HEADERS priority missing"))?;
    }
    let keep = p.len().checked_sub(pad).ok_or_else(|| invalid("http/2: HEADERS padding too long"))?;
    Ok(&p[..keep])
}

/// Decodes a header block, drops an invalid `:authority`, and encodes it for the server.
fn reencode(hpack: &mut Hpack, fragment: &[u8]) -> io::Result<Vec<u8>> {
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    hpack
        .decoder
        .decode_with_cb(fragment, |n, v| headers.push((n.into_owned(), v.into_owned())))
        .map_err(|e| invalid(format!("http/2: header block does not decode: {e:?}")))?;
    headers.retain(|(n, v)| {
        let keep = n.as_slice() != b":authority" || Authority::try_from(v.as_slice()).is_ok();
        if !keep {
            tracing::debug!(authority = %String::from_utf8_lossy(v), "dropping an :authority that is not host:port");
        }
        keep
    });
    Ok(hpack.encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))))
}

/// Writes `block` as one HEADERS frame, followed by CONTINUATION frames if it is larger than a
/// frame may be.
fn write_block(out: &mut BytesMut, stream: u32, end_stream: bool, block: &[u8]) {
    let mut chunks = block.chunks(FRAME_MAX).peekable();
    let mut kind = HEADERS;
    let mut first_flags = if end_stream { END_STREAM } else { 0 };
    // An empty block still needs its (empty) HEADERS frame.
    let empty: &[u8] = &[];
    let mut next = chunks.next().or(Some(empty));
    while let Some(chunk) = next {
        next = chunks.next();
        let flags = first_flags | if next.is_none() { END_HEADERS } else { 0 };
        out.put_uint(chunk.len() as u64, 3);
        out.put_u8(kind);
        out.put_u8(flags);
        out.put_u32(stream);
        out.put_slice(chunk);
        kind = CONTINUATION;
        first_flags = 0;
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            if matches!(this.mode, Mode::Pass) && this.buf.is_empty() {
                return Pin::new(&mut this.io).poll_read(cx, out);
            }
            this.process()?;
            if this.ready > 0 {
                continue;
            }
            this.buf.reserve(READ_CHUNK);
            let n = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buf))?;
            if n == 0 {
                match this.mode {
                    // Fewer bytes than the preface, then the end: hand them over as they are.
                    Mode::Sniff if !this.buf.is_empty() => this.mode = Mode::Pass,
                    // The end (a partial frame left is the server's to complain about: it never
                    // sees it, only the end).
                    _ => return Poll::Ready(Ok(())),
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for AuthorityFix<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests;
