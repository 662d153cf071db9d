//! Opening a segment log: sealed segments are read by their trailers only; the one unsealed
//! segment (the active one) is scanned record by record up to its first bad record, where the
//! log continues.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::record;
use super::record::Kind;
use super::record::Parsed;
use super::segment;
use super::state::Groups;
use super::state::Slots;
use super::state::Span;
use crate::error::Result;
use crate::error::StorageError;

/// What opening found: every group's log, the open segment files, and where to go on writing.
pub(crate) struct Recovered {
    pub(crate) groups: Groups,
    pub(crate) files: BTreeMap<u64, Arc<File>>,
    /// The active segment and the offset where its next record goes.
    pub(crate) active: u64,
    pub(crate) offset: u64,
    /// The epoch of this boot: above every epoch on disk.
    pub(crate) epoch: u32,
}

fn corrupt(reason: String) -> StorageError {
    StorageError::Corruption { what: "segment log", reason }
}

/// Opens the log in `dir` (creating it), making a first segment of `segment_bytes` if it has
/// none. Blocking.
pub(crate) fn open(dir: &Path, segment_bytes: u64) -> Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let mut groups = Groups::default();
    let mut files = BTreeMap::new();
    let mut unsealed = Vec::new();
    let mut newest_meta = None;
    let mut epoch = 0u32;
    for (seq, p) in segment::list(dir)? {
        let f = segment::open(&p)?;
        match segment::read_seal(&f).map_err(|e| corrupt(format!("{}: {e}", p.display())))? {
            Some((_, t)) => {
                if let Some(u) = unsealed.first() {
                    return Err(corrupt(format!(
                        "segment {u} is unsealed but a later one, {seq}, is sealed"
                    )));
                }
                epoch = epoch.max(t.epoch);
                for &(g, first, last, at) in &t.spans {
                    let log = groups.group(g);
                    log.truncate(first);
                    log.spans.push(Span { seq, first, last, slots: Slots::Sealed { at } });
                    log.last = Some(last);
                }
                newest_meta = Some(t.groups);
            }
            None => unsealed.push(seq),
        }
        files.insert(seq, Arc::new(f));
    }
    for (g, first, last, values) in newest_meta.unwrap_or_default() {
        let log = groups.group(g);
        log.purge(first);
        log.truncate(last.map_or(0, |l| l + 1));
        log.values = values;
    }
    if unsealed.len() > 1 {
        return Err(corrupt(format!("segments {unsealed:?} are unsealed; only the newest may be")));
    }
    let (active, offset) = match unsealed.first() {
        Some(&seq) => {
            let file = files.get(&seq).cloned().ok_or_else(|| corrupt(format!("segment {seq} vanished")))?;
            let (end, e) = scan(&file, seq, &mut groups, &segment::path(dir, seq))?;
            epoch = epoch.max(e);
            if file.metadata()?.len() < segment_bytes {
                segment::preallocate(&file, seq, segment_bytes);
            }
            // What was recovered may still be only in the page cache (a process restart, not a
            // power loss): make it durable before anyone builds on it.
            file.sync_data()?;
            (seq, end)
        }
        None => {
            let seq = files.keys().next_back().map_or(0, |s| s + 1);
            files.insert(seq, Arc::new(segment::create(dir, seq, segment_bytes)?));
            (seq, 0)
        }
    };
    for (g, log) in &groups.groups {
        check_contiguous(*g, log)?;
    }
    let epoch = epoch.checked_add(1).ok_or_else(|| corrupt("epoch counter exhausted".into()))?;
    Ok(Recovered { groups, files, active, offset, epoch })
}

/// Every index from the group's lowest to its last must be in exactly one span.
fn check_contiguous(g: u32, log: &super::state::GroupLog) -> Result<()> {
    let Some(last) = log.last else { return Ok(()) };
    let Some(lowest) = log.spans.first() else {
        return Err(corrupt(format!("group {g}: entries up to {last} are in no segment")));
    };
    let mut next = lowest.first.max(log.first);
    for s in &log.spans {
        if s.first > next {
            return Err(corrupt(format!(
                "group {g}: entries {next}..{} are missing (purge point {}, last {last}; segment {} starts at {})",
                s.first, log.first, s.seq, s.first
            )));
        }
        next = next.max(s.last + 1);
    }
    if next <= last {
        return Err(corrupt(format!("group {g}: entries {next}..={last} are missing")));
    }
    Ok(())
}

/// Buffered reads of a file being scanned front to back.
struct Cursor<'a> {
    file: &'a File,
    len: u64,
    buf: Vec<u8>,
    at: u64,
}

impl Cursor<'_> {
    /// The bytes from `off`: at least `n` of them unless the file ends sooner.
    fn bytes(&mut self, off: u64, n: usize) -> std::io::Result<&[u8]> {
        const CHUNK: u64 = 1 << 20;
        let end = off.saturating_add(n as u64).min(self.len);
        if off < self.at || end > self.at + self.buf.len() as u64 {
            let want = (end.saturating_sub(off)).max(CHUNK).min(self.len.saturating_sub(off));
            self.buf.resize(want as usize, 0);
            self.file.read_exact_at(&mut self.buf, off)?;
            self.at = off;
        }
        Ok(&self.buf[(off - self.at) as usize..])
    }
}

/// Reads records of the active segment from the start into `groups`; returns where they end and
/// the newest epoch among them.
fn scan(file: &File, seq: u64, groups: &mut Groups, path: &Path) -> Result<(u64, u32)> {
    let mut cur = Cursor { file, len: file.metadata()?.len(), buf: Vec::new(), at: 0 };
    let mut off = 0u64;
    let mut epoch = 0u32;
    loop {
        let head = cur.bytes(off, record::HEADER_LEN)?;
        if head.len() < record::HEADER_LEN {
            // The file ends inside a header: a record cut short, unless all that is left is zeros.
            if head.iter().any(|b| *b != 0) {
                tracing::warn!(path = %path.display(), offset = off, left = head.len(), "segment log tail is torn (the file ends inside a record header); continuing from the last whole record");
            }
            break;
        }
        let rlen = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let rec = cur.bytes(off, rlen.max(record::HEADER_LEN))?;
        let h = match record::parse(rec, seq) {
            Parsed::Record(h) if h.epoch >= epoch => h,
            Parsed::Record(h) => {
                tracing::warn!(path = %path.display(), offset = off, record_epoch = h.epoch, epoch, "segment log ends at a record of an earlier boot");
                break;
            }
            Parsed::End => break,
            Parsed::Bad(why) => {
                tracing::warn!(path = %path.display(), offset = off, reason = %why, "segment log tail is torn; continuing from the last whole record");
                break;
            }
        };
        epoch = h.epoch;
        let payload = || Bytes::copy_from_slice(&rec[record::HEADER_LEN..h.len as usize]);
        let log = groups.group(h.group);
        match h.kind {
            Kind::Entry => log
                .append(h.index, seq, off as u32, h.len)
                .map_err(|r| corrupt(format!("{} offset {off}: group {}: {r}", path.display(), h.group)))?,
            Kind::Vote => log.values.vote = Some(payload()),
            Kind::Committed => log.values.committed = Some(payload()),
            Kind::Purge => {
                log.purge(h.index);
                if h.len as usize > record::HEADER_LEN {
                    log.values.purged = Some(payload());
                }
            }
            Kind::Truncate => log.truncate(h.index),
        }
        off += u64::from(h.len);
    }
    Ok((off, epoch))
}
