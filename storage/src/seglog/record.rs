//! One record of a segment: a fixed header, then the payload.
//!
//! ```text
//! len u32 | crc u32 | kind u8 | seq u32 | epoch u32 | group u32 | index u64 | payload
//! ```
//! All big-endian. `len` counts the whole record; `crc` is CRC-32 of everything after it (header
//! rest and payload), so a torn or flipped record never parses. `seq` is the low 32 bits of the
//! segment's sequence number (a record copied or left in another file does not parse there);
//! `epoch` is the boot that wrote it: epochs never decrease along a segment, so a record of an
//! earlier boot left behind a torn one (written, unsynced, the ones before it lost) is not taken
//! for a record of the current boot when the tail is rewritten over the torn one.

/// Bytes of the header.
pub(crate) const HEADER_LEN: usize = 29;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A Raft entry: `index` is its log index, the payload its encoding.
    Entry = 1,
    /// The group's vote (payload: its encoding).
    Vote = 2,
    /// The group's committed log id (payload: its encoding).
    Committed = 3,
    /// Entries below `index` are gone; payload: the encoded purged log id.
    Purge = 4,
    /// Entries at and above `index` are gone.
    Truncate = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Entry,
            2 => Kind::Vote,
            3 => Kind::Committed,
            4 => Kind::Purge,
            5 => Kind::Truncate,
            _ => return None,
        })
    }
}

/// A parsed header (its CRC checked against the whole record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: u32,
    pub(crate) kind: Kind,
    pub(crate) epoch: u32,
    pub(crate) group: u32,
    pub(crate) index: u64,
}

/// Appends one record to `buf`.
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    kind: Kind,
    seq: u64,
    epoch: u32,
    group: u32,
    index: u64,
    payload: &[u8],
) {
    let start = buf.len();
    let len = (HEADER_LEN + payload.len()) as u32;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(kind as u8);
    buf.extend_from_slice(&(seq as u32).to_be_bytes());
    buf.extend_from_slice(&epoch.to_be_bytes());
    buf.extend_from_slice(&group.to_be_bytes());
    buf.extend_from_slice(&index.to_be_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Bytes a record with `payload_len` bytes of payload takes.
pub(crate) fn encoded_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// What is at some place of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A whole record with a good checksum.
    Record(Header),
    /// Zeros (never written), or fewer bytes than a header: the end of what was written.
    End,
    /// Something that is not a whole record of this segment: torn, flipped, or foreign.
    Bad(String),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    (u64::from(u32_at(b, at)) << 32) | u64::from(u32_at(b, at + 4))
}

/// Parses the record at the start of `bytes` (which may hold more after it) of segment `seq`.
pub(crate) fn parse(bytes: &[u8], seq: u64) -> Parsed {
    if bytes.len() < HEADER_LEN {
        return Parsed::End;
    }
    let len = u32_at(bytes, 0);
    if len == 0 && u32_at(bytes, 4) == 0 {
        return Parsed::End;
    }
    let n = len as usize;
    if n < HEADER_LEN {
        return Parsed::Bad(format!("record length {len} is shorter than a header"));
    }
    if n > bytes.len() {
        return Parsed::Bad(format!("record of {len} bytes, only {} there", bytes.len()));
    }
    let crc = u32_at(bytes, 4);
    if crc32fast::hash(&bytes[8..n]) != crc {
        return Parsed::Bad("checksum mismatch".into());
    }
    let Some(kind) = Kind::from_u8(bytes[8]) else {
        return Parsed::Bad(format!("unknown record kind {}", bytes[8]));
    };
    let s = u32_at(bytes, 9);
    if s != seq as u32 {
        return Parsed::Bad(format!("record of segment {s} in segment {seq}"));
    }
    Parsed::Record(Header {
        len,
        kind,
        epoch: u32_at(bytes, 13),
        group: u32_at(bytes, 17),
        index: u64_at(bytes, 21),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let mut buf = Vec::new();
        encode(&mut buf, Kind::Entry, 7, 3, 2, 42, b"payload");
        assert_eq!(buf.len(), encoded_len(7));
        let h = Header { len: buf.len() as u32, kind: Kind::Entry, epoch: 3, group: 2, index: 42 };
        assert_eq!(parse(&buf, 7), Parsed::Record(h));
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert!(matches!(parse(&b, 7), Parsed::Bad(_)), "flip at {i} parsed");
        }
    }

    #[test]
    fn zeros_and_short_tails_end_a_segment_and_foreign_records_are_bad() {
        assert_eq!(parse(&[0; 64], 1), Parsed::End);
        assert_eq!(parse(&[1; 10], 1), Parsed::End);
        let mut buf = Vec::new();
        encode(&mut buf, Kind::Vote, 1, 1, 1, 0, b"v");
        assert!(matches!(parse(&buf[..buf.len() - 1], 1), Parsed::Bad(_)));
        assert!(matches!(parse(&buf, 2), Parsed::Bad(_)));
    }
}
