use proptest::prelude::*;
use tokio::io::AsyncReadExt;

use super::*;

/// Reads at most `step` bytes at a time from `data`, to exercise frames split across reads.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.step.min(this.data.len() - this.at).min(out.remaining());
        out.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_uint(payload.len() as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
    out.put_slice(payload);
    out.to_vec()
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;
/// A frame as the server reads it: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

fn request(authority: &str, path: &str) -> Headers {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", path),
        ("content-type", "application/grpc"),
        ("x-mq-client-id", "client-1"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn encode(enc: &mut Encoder<'static>, h: &Headers) -> Vec<u8> {
    enc.encode(h.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
}

/// What a client sends: the preface, SETTINGS, then three requests: a bad authority in one
/// HEADERS frame with padding and priority, a good one split over HEADERS and CONTINUATION, the
/// bad one again (now from the client's dynamic table), each followed by a DATA frame.
fn client_bytes() -> (Vec<u8>, Vec<Headers>) {
    let mut enc = Encoder::new();
    let bad = request("127.0.0.1:8081,127.0.0.1:8082", "/apache.rocketmq.v2.MessagingService/SendMessage");
    let good = request("127.0.0.1:8081", "/apache.rocketmq.v2.MessagingService/QueryRoute");
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]));
    let block = encode(&mut enc, &bad);
    let mut payload = vec![3u8]; // pad length
    payload.extend([0, 0, 0, 0, 16]); // priority: dependency 0, weight 16
    payload.extend(&block);
    payload.extend([0, 0, 0]);
    out.extend(frame(HEADERS, END_HEADERS | PADDED | PRIORITY, 1, &payload));
    out.extend(frame(0x0, END_STREAM, 1, b"body one"));
    let block = encode(&mut enc, &good);
    let (a, b) = block.split_at(block.len() / 2);
    out.extend(frame(HEADERS, 0, 3, a));
    out.extend(frame(CONTINUATION, END_HEADERS, 3, b));
    out.extend(frame(0x0, END_STREAM, 3, b"body two"));
    let block = encode(&mut enc, &bad);
    out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 5, &block));
    let without = |h: &Headers| h.iter().filter(|(n, _)| n.as_slice() != b":authority").cloned().collect();
    (out, vec![without(&bad), good, without(&bad)])
}

/// Splits what the server would read into frames and decodes their header blocks.
fn server_view(bytes: &[u8]) -> (Vec<Frame>, Vec<Headers>) {
    assert!(bytes.starts_with(PREFACE));
    let mut rest = &bytes[PREFACE.len()..];
    let mut frames = Vec::new();
    let mut blocks = Vec::new();
    let mut dec = Decoder::new();
    let mut pending = Vec::new();
    while !rest.is_empty() {
        let len = (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        let payload = rest[9..9 + len].to_vec();
        if kind == HEADERS || kind == CONTINUATION {
            assert_eq!(flags & (PADDED | PRIORITY), 0, "written frames carry neither padding nor priority");
            pending.extend(&payload);
            if flags & END_HEADERS != 0 {
                blocks.push(dec.decode(&pending).expect("the server decodes what we encoded"));
                pending.clear();
            }
        }
        frames.push((kind, flags, stream, payload));
        rest = &rest[9 + len..];
    }
    (frames, blocks)
}

async fn through(data: Vec<u8>, step: usize) -> io::Result<Vec<u8>> {
    let mut fix = AuthorityFix::new(Trickle { data, at: 0, step });
    let mut out = Vec::new();
    fix.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn an_invalid_authority_is_dropped_and_the_rest_kept() {
    let (input, want) = client_bytes();
    for step in [1, 7, 64, 1 << 20] {
        let out = through(input.clone(), step).await.unwrap();
        let (frames, blocks) = server_view(&out);
        assert_eq!(blocks, want, "read {step} bytes at a time");
        let data: Vec<_> = frames.iter().filter(|f| f.0 == 0).map(|f| (f.2, f.3.clone())).collect();
        assert_eq!(data, vec![(1, b"body one".to_vec()), (3, b"body two".to_vec())]);
        let ends: Vec<_> =
            frames.iter().filter(|f| f.0 == HEADERS).map(|f| (f.2, f.1 & END_STREAM != 0)).collect();
        assert_eq!(ends, vec![(1, false), (3, false), (5, true)], "END_STREAM kept");
        assert_eq!(frames[0], (0x4, 0, 0, vec![0, 4, 0, 0, 0xff, 0xff]), "SETTINGS untouched");
    }
}

#[tokio::test]
async fn http1_passes_byte_for_byte() {
    let req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n\r\n".to_vec();
    for step in [1, 5, 1024] {
        assert_eq!(through(req.clone(), step).await.unwrap(), req);
    }
    assert_eq!(through(b"PRI".to_vec(), 1).await.unwrap(), b"PRI".to_vec(), "short input passes");
}

#[tokio::test]
async fn a_large_block_is_split_into_frames_the_server_accepts() {
    let mut enc = Encoder::new();
    let mut h = request("a:1,b:2", "/x");
    h.push((b"x-big".to_vec(), vec![b'v'; 40_000]));
    let mut input = PREFACE.to_vec();
    let block = encode(&mut enc, &h);
    for (i, chunk) in block.chunks(10_000).enumerate() {
        let last = (i + 1) * 10_000 >= block.len();
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        input.extend(frame(kind, if last { END_HEADERS } else { 0 }, 1, chunk));
    }
    let out = through(input, 4096).await.unwrap();
    let (frames, blocks) = server_view(&out);
    assert!(frames.iter().all(|f| f.3.len() <= FRAME_MAX));
    assert!(frames.len() >= 3);
    assert_eq!(blocks[0].len(), h.len() - 1);
    assert_eq!(blocks[0].last().unwrap().1.len(), 40_000);
}

#[tokio::test]
async fn protocol_errors_close_the_connection() {
    let mut enc = Encoder::new();
    let block = encode(&mut enc, &request("x:1", "/"));
    let mut interrupted = PREFACE.to_vec();
    interrupted.extend(frame(HEADERS, 0, 1, &block));
    interrupted.extend(frame(0x0, 0, 1, b"data inside a header block"));
    assert!(through(interrupted, 3).await.is_err());
    let mut stray = PREFACE.to_vec();
    stray.extend(frame(CONTINUATION, END_HEADERS, 1, &block));
    assert!(through(stray, 100).await.is_err());
    let mut garbage = PREFACE.to_vec();
    garbage.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]));
    assert!(through(garbage, 100).await.is_err());
    let mut padded = PREFACE.to_vec();
    padded.extend(frame(HEADERS, END_HEADERS | PADDED, 1, &[200, 1, 2]));
    assert!(through(padded, 100).await.is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Hostile frames after the preface: an error or a clean end, never a panic.
    #[test]
    fn hostile_frames_never_panic(frames in prop::collection::vec((any::<u8>(), any::<u8>(), 0u32..4, prop::collection::vec(any::<u8>(), 0..64)), 0..8), step in 1usize..50) {
        let mut input = PREFACE.to_vec();
        for (kind, flags, stream, payload) in frames {
            input.extend(frame(kind % 10, flags, stream, &payload));
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(through(input, step));
    }
}
