//! Segment files: `<dir>/<seq:020>.seg`, preallocated, records from offset 0, and once full a
//! seal: the per-entry slots of every group's span, the trailer (every group's retained range and
//! small values, and where its spans' slots are), and a fixed footer at the very end.
//!
//! ```text
//! records… | slots (u32 offset, u32 length)… | trailer | footer (32 bytes)
//! footer: magic [8] | start u64 (end of records) | trailer_at u64 | epoch u32 | crc u32
//! ```
//! The footer's CRC covers the trailer and the footer's other fields, so a seal cut short by a
//! crash never reads as one: the segment is then scanned like the active one. Slots are not in
//! the CRC (reading them all would make opening cost a read of every slot); a bad slot is caught
//! where it is used, because the record it points to must carry the expected group, index and CRC.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;

use bytes::Bytes;

use super::state::GroupLog;
use super::state::Groups;
use super::state::Slots;
use super::state::Values;
use crate::codec::Reader;
use crate::codec::Writer;
use crate::error::DecodeError;

const MAGIC: &[u8; 8] = b"RMQSEG\x00\x01";
/// Bytes of the footer.
pub(crate) const FOOTER_LEN: u64 = 32;

/// The path of segment `seq`.
pub(crate) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// The segments in `dir`, in order. Files that are not segments are left alone.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let seq = p
            .extension()
            .filter(|x| *x == "seg")
            .and_then(|_| p.file_stem())
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, p));
        }
    }
    out.sort();
    Ok(out)
}

/// Creates segment `seq` with `bytes` reserved (so appends do not grow the file) and makes its
/// name durable.
pub(crate) fn create(dir: &Path, seq: u64, bytes: u64) -> io::Result<File> {
    let f = OpenOptions::new().read(true).write(true).create_new(true).open(path(dir, seq))?;
    preallocate(&f, seq, bytes);
    sync_dir(dir)?;
    Ok(f)
}

/// Reserves `bytes` for segment `seq` (a file that lost its tail, cut short by a crash or by
/// hand, gets its reservation back). Some file systems (FUSE pass-throughs among them) cannot
/// reserve: appends then grow the file.
pub(crate) fn preallocate(f: &File, seq: u64, bytes: u64) {
    if let Err(e) = nix::fcntl::fallocate(f, nix::fcntl::FallocateFlags::empty(), 0, bytes as i64) {
        tracing::debug!(seq, error = %e, "segment preallocation refused; the file grows as written");
    }
}

/// Opens an existing segment for reading and writing.
pub(crate) fn open(p: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(p)
}

/// Makes the directory's entries (created or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A sealed segment's trailer.
#[derive(Debug, Default)]
pub(crate) struct Trailer {
    /// The boot that sealed it.
    pub(crate) epoch: u32,
    /// Every group's retained range and values when it was sealed: `(group, first, last, values)`.
    pub(crate) groups: Vec<(u32, u64, Option<u64>, Values)>,
    /// The spans it holds: `(group, first, last, slots_at)`.
    pub(crate) spans: Vec<(u32, u64, u64, u64)>,
}

fn put_opt(w: &mut Writer, v: &Option<Bytes>) {
    match v {
        Some(b) => w.u8(1).bytes(b),
        None => w.u8(0),
    };
}

fn get_opt(r: &mut Reader<'_>) -> Result<Option<Bytes>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        _ => Some(Bytes::copy_from_slice(r.bytes()?)),
    })
}

/// Seals segment `seq` whose records end at `start`: writes slots, trailer and footer there,
/// cuts the file to its end and fsyncs it. Every group's span in `seq` then points at its slots.
pub(crate) fn seal(file: &File, seq: u64, start: u64, epoch: u32, groups: &mut Groups) -> io::Result<u64> {
    let mut buf = Vec::new();
    let mut spans = Vec::new();
    for (&g, log) in groups.groups.iter_mut() {
        for s in log.spans.iter_mut().filter(|s| s.seq == seq) {
            if let Slots::Active(v) = &s.slots {
                let at = start + buf.len() as u64;
                for (off, len) in v {
                    buf.extend_from_slice(&off.to_be_bytes());
                    buf.extend_from_slice(&len.to_be_bytes());
                }
                spans.push((g, s.first, s.last, at));
                s.slots = Slots::Sealed { at };
            }
        }
    }
    let trailer_at = start + buf.len() as u64;
    let mut w = Writer::with_capacity(256);
    w.u32(groups.groups.len() as u32);
    for (&g, GroupLog { first, last, values, .. }) in &groups.groups {
        w.u32(g).u64(*first).opt_u64(*last);
        put_opt(&mut w, &values.vote);
        put_opt(&mut w, &values.committed);
        put_opt(&mut w, &values.purged);
    }
    w.u32(spans.len() as u32);
    for (g, first, last, at) in &spans {
        w.u32(*g).u64(*first).u64(*last).u64(*at);
    }
    buf.extend_from_slice(w.as_slice());
    let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
    footer.extend_from_slice(MAGIC);
    footer.extend_from_slice(&start.to_be_bytes());
    footer.extend_from_slice(&trailer_at.to_be_bytes());
    footer.extend_from_slice(&epoch.to_be_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(w.as_slice());
    h.update(&footer);
    footer.extend_from_slice(&h.finalize().to_be_bytes());
    buf.extend_from_slice(&footer);
    file.write_all_at(&buf, start)?;
    let end = start + buf.len() as u64;
    file.set_len(end)?;
    file.sync_data()?;
    Ok(end)
}

/// Reads a segment's seal: `Ok(None)` if it has none (the active segment, or a seal a crash cut
/// short), an error if the trailer does not decode although its checksum matched.
pub(crate) fn read_seal(file: &File) -> io::Result<Option<(u64, Trailer)>> {
    let len = file.metadata()?.len();
    if len < FOOTER_LEN {
        return Ok(None);
    }
    let mut footer = [0u8; FOOTER_LEN as usize];
    file.read_exact_at(&mut footer, len - FOOTER_LEN)?;
    if &footer[..8] != MAGIC {
        return Ok(None);
    }
    let u64_at = |i: usize| u64::from_be_bytes(footer[i..i + 8].try_into().unwrap_or_default());
    let (start, trailer_at) = (u64_at(8), u64_at(16));
    let epoch = u32::from_be_bytes(footer[24..28].try_into().unwrap_or_default());
    let crc = u32::from_be_bytes(footer[28..32].try_into().unwrap_or_default());
    if start > trailer_at || trailer_at > len - FOOTER_LEN {
        return Ok(None);
    }
    let mut body = vec![0u8; (len - FOOTER_LEN - trailer_at) as usize];
    file.read_exact_at(&mut body, trailer_at)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&body);
    h.update(&footer[..28]);
    if h.finalize() != crc {
        return Ok(None);
    }
    let trailer = decode_trailer(&body, epoch).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some((start, trailer)))
}

fn decode_trailer(body: &[u8], epoch: u32) -> Result<Trailer, DecodeError> {
    let mut r = Reader::new(body, "segment trailer");
    let mut t = Trailer { epoch, ..Trailer::default() };
    for _ in 0..r.u32()? {
        let (g, first, last) = (r.u32()?, r.u64()?, r.opt_u64()?);
        let values = Values { vote: get_opt(&mut r)?, committed: get_opt(&mut r)?, purged: get_opt(&mut r)? };
        t.groups.push((g, first, last, values));
    }
    for _ in 0..r.u32()? {
        t.spans.push((r.u32()?, r.u64()?, r.u64()?, r.u64()?));
    }
    r.finish()?;
    Ok(t)
}

/// Reads the `(offset, length)` slot at `at` of a sealed segment.
pub(crate) fn read_slot(file: &File, at: u64) -> io::Result<(u32, u32)> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, at)?;
    Ok((u32::from_be_bytes([b[0], b[1], b[2], b[3]]), u32::from_be_bytes([b[4], b[5], b[6], b[7]])))
}
