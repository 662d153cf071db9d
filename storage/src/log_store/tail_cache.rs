//! The newest entries of one group's log, in memory.
//!
//! `append` must make entries readable before it returns, but the write to RocksDB happens later
//! on the writer thread. The cache bridges that gap: an entry enters it on `append` and may leave
//! only after the writer put it into RocksDB. It also keeps recent entries hot for apply,
//! replication and consumers that keep up, up to a byte budget.

use std::collections::VecDeque;

use crate::types::Entry;

#[derive(Debug)]
struct Cached {
    entry: Entry,
    /// Encoded size, used for the byte budget and for bounding AppendEntries.
    size: usize,
    /// Append sequence number; the writer reports progress in these.
    seq: u64,
}

/// A contiguous run of log entries `[first, first + len)`.
#[derive(Debug)]
pub(crate) struct TailCache {
    entries: VecDeque<Cached>,
    /// Index of `entries[0]`, or the next index to append when empty.
    first: u64,
    next_seq: u64,
    /// Highest append sequence number the writer has put into RocksDB.
    written_seq: u64,
    bytes: usize,
    budget_bytes: usize,
}

impl TailCache {
    /// An empty cache whose next entry will be `next_index`.
    pub(crate) fn new(next_index: u64, budget_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            first: next_index,
            next_seq: 1,
            written_seq: 0,
            bytes: 0,
            budget_bytes,
        }
    }

    /// Index of the first cached entry (or of the next entry to come when empty).
    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Adds entries at the tail; they must continue the log. Returns the sequence number the
    /// writer must report once they are in RocksDB.
    pub(crate) fn append(&mut self, entries: Vec<(Entry, usize)>) -> Result<u64, String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some((head, _)) = entries.first() else { return Ok(seq) };
        let start = head.log_id.index;
        if self.entries.is_empty() {
            self.first = start;
        } else if start != self.end() {
            return Err(format!("append at {start} does not continue the log ending at {}", self.end()));
        }
        for (entry, size) in entries {
            self.bytes += size;
            self.entries.push_back(Cached { entry, size, seq });
        }
        Ok(seq)
    }

    /// Drops every entry after `index` (`None`: every entry). When `index` is below the cache,
    /// the cache empties and the next append starts right after `index`.
    pub(crate) fn truncate_after(&mut self, index: Option<u64>) {
        let keep_end = index.map_or(0, |i| i + 1);
        if keep_end <= self.first {
            self.entries.clear();
            self.bytes = 0;
            self.first = keep_end;
            return;
        }
        while self.end() > keep_end {
            if let Some(c) = self.entries.pop_back() {
                self.bytes -= c.size;
            }
        }
    }

    /// Drops every entry up to and including `index`.
    pub(crate) fn purge(&mut self, index: u64) {
        while self.first <= index {
            match self.entries.pop_front() {
                Some(c) => self.bytes -= c.size,
                None => {
                    self.first = index + 1;
                    return;
                }
            }
            self.first += 1;
        }
    }

    /// Records that appends up to `seq` are in RocksDB and evicts the oldest written entries
    /// while over budget.
    pub(crate) fn mark_written(&mut self, seq: u64) {
        self.written_seq = self.written_seq.max(seq);
        while self.bytes > self.budget_bytes {
            match self.entries.front() {
                Some(c) if c.seq <= self.written_seq => {
                    self.bytes -= c.size;
                    self.entries.pop_front();
                    self.first += 1;
                }
                _ => break,
            }
        }
    }

    /// Cached entries in `[start, end)` (clamped to what is cached), stopping once `bytes_max`
    /// is reached after at least one entry.
    pub(crate) fn get(&self, start: u64, end: u64, bytes_max: usize) -> (Vec<Entry>, usize) {
        let from = start.max(self.first);
        let to = end.min(self.end());
        let mut out = Vec::new();
        let mut bytes = 0;
        if from >= to {
            return (out, bytes);
        }
        for c in self.entries.range((from - self.first) as usize..(to - self.first) as usize) {
            if !out.is_empty() && bytes + c.size > bytes_max {
                break;
            }
            bytes += c.size;
            out.push(c.entry.clone());
        }
        (out, bytes)
    }

    /// Bytes cached.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;

    use super::*;
    use crate::types::CommittedLeaderId;
    use crate::types::LogId;

    fn ent(term: u64, index: u64) -> (Entry, usize) {
        (
            Entry {
                log_id: LogId::new(CommittedLeaderId { term, node_id: 1 }, index),
                payload: EntryPayload::Blank,
            },
            10,
        )
    }

    fn indexes(c: &TailCache) -> Vec<(u64, u64)> {
        c.get(0, u64::MAX, usize::MAX).0.iter().map(|e| (e.log_id.leader_id.term, e.log_id.index)).collect()
    }

    #[test]
    fn append_must_continue_the_log() {
        let mut c = TailCache::new(1, 1000);
        c.append(vec![ent(1, 1), ent(1, 2)]).unwrap();
        assert!(c.append(vec![ent(1, 4)]).is_err());
        c.append(vec![ent(1, 3)]).unwrap();
        assert_eq!(indexes(&c), vec![(1, 1), (1, 2), (1, 3)]);
    }

    #[test]
    fn eviction_never_drops_unwritten_entries() {
        let mut c = TailCache::new(1, 15);
        let s1 = c.append(vec![ent(1, 1), ent(1, 2)]).unwrap();
        let s2 = c.append(vec![ent(1, 3)]).unwrap();
        c.mark_written(s1);
        // Over budget (30 > 15): 1 and 2 are written and may go; 3 is not written and stays.
        assert_eq!(indexes(&c), vec![(1, 3)]);
        assert_eq!(c.first(), 3);
        c.mark_written(s2);
        assert_eq!(indexes(&c), vec![(1, 3)], "within budget now");
    }

    #[test]
    fn truncate_then_reappend_is_not_evicted_by_the_old_write() {
        let mut c = TailCache::new(1, 0);
        let old = c.append(vec![ent(1, 1), ent(1, 2), ent(1, 3)]).unwrap();
        c.truncate_after(Some(1));
        let new = c.append(vec![ent(2, 2)]).unwrap();
        c.mark_written(old);
        // Budget 0: entry 1 (written) goes; the re-appended entry 2 of term 2 is not written yet.
        assert_eq!(indexes(&c), vec![(2, 2)]);
        c.mark_written(new);
        assert!(indexes(&c).is_empty());
        assert_eq!(c.first(), 3);
    }

    #[test]
    fn truncate_below_the_cache_resets_the_start() {
        let mut c = TailCache::new(10, 1000);
        c.append(vec![ent(1, 10), ent(1, 11)]).unwrap();
        c.truncate_after(Some(5));
        assert_eq!(c.first(), 6);
        c.append(vec![ent(2, 6)]).unwrap();
        assert_eq!(indexes(&c), vec![(2, 6)]);
        c.truncate_after(None);
        assert_eq!(c.first(), 0);
    }

    #[test]
    fn purge_and_byte_limited_get() {
        let mut c = TailCache::new(1, 1000);
        c.append((1..=5).map(|i| ent(1, i)).collect()).unwrap();
        c.purge(2);
        assert_eq!(c.first(), 3);
        let (got, bytes) = c.get(1, 10, 15);
        assert_eq!(got.len(), 1, "the byte cap stops after one 10-byte entry");
        assert_eq!(bytes, 10);
        assert_eq!(c.get(4, 5, 0).0.len(), 1, "at least one entry is returned");
        c.purge(9);
        assert_eq!(c.first(), 10);
        assert_eq!(c.bytes(), 0);
    }
}
