//! Explicit binary encoding for everything raftmq puts on disk or into a Raft entry.
//!
//! Raft entries and state-machine records are an on-disk format, not a wire format: they are
//! written once and read back years later, by newer code. So they get their own small, versioned,
//! hand-written encoding (big-endian integers, length-prefixed byte strings) instead of a derive
//! whose layout could shift with a library upgrade. Fixture tests in `codec/tests.rs` pin the bytes.

use bytes::Bytes;

use crate::error::DecodeError;

/// Appends big-endian integers and length-prefixed byte strings to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer with room for `capacity` bytes before it reallocates.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity) }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a `u32`, big-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `u64`, big-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends an `i64`, big-endian two's complement.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a bool as one byte (0 or 1).
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// Appends a byte string prefixed by its length as `u32`.
    ///
    /// # Panics
    /// Never for inputs raftmq produces: every byte string it stores is bounded far below 4 GiB
    /// by the request limits checked at the gRPC edge.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).expect("byte string under 4 GiB (bounded at the edge)");
        self.u32(len);
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a UTF-8 string as a length-prefixed byte string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// Appends raw bytes with no length prefix.
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends an optional `u64` as a presence byte and the value.
    pub fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.u8(1).u64(v),
            None => self.u8(0),
        }
    }

    /// Overwrites the `u32` at byte offset `at` (written earlier as a placeholder).
    ///
    /// # Panics
    /// If `at + 4` is past what was written: a caller bug, not an input error.
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// The encoded bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded bytes, read-only.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets what was written, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Reads what [`Writer`] wrote; every read is bounds-checked and fails with [`DecodeError`].
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `what` names the record in error messages.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    /// Current position from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::new(
                self.what,
                format!("truncated: need {n} bytes at offset {}, have {}", self.pos, self.remaining()),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a big-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }

    /// Reads a bool written by [`Writer::bool`]; any other byte is corruption.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::new(self.what, format!("bad bool byte {b}"))),
        }
    }

    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let what = self.what;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|e| DecodeError::new(what, format!("invalid utf-8: {e}")))
    }

    /// Reads an optional `u64` written by [`Writer::opt_u64`].
    pub fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        if self.bool()? { Ok(Some(self.u64()?)) } else { Ok(None) }
    }

    /// Reads `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take(n)
    }

    /// The unread rest of the buffer.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Fails unless every byte was consumed: trailing bytes mean a format mismatch.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::new(
                self.what,
                format!("{} trailing bytes at offset {}", self.remaining(), self.pos),
            ))
        }
    }
}

/// Returns the sub-slice of `whole` that `part` points into, as a zero-copy [`Bytes`].
///
/// `part` must be a sub-slice of `whole`'s memory; this is how decoders hand out message bodies
/// without copying them out of the log entry they live in.
pub fn slice_of(whole: &Bytes, part: &[u8]) -> Bytes {
    whole.slice_ref(part)
}

#[cfg(test)]
mod tests;
