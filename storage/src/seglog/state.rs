//! The in-memory picture of a segment log: for every group, which segments hold which of its
//! entries, its retained range and its small values (vote, committed, purged).
//!
//! Memory is per (group, segment) for sealed segments, whose per-entry slots stay on disk in the
//! segment's trailer; only the active segment's slots (8 bytes per entry) are held here.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Where one group's entries `first..=last` are within one segment.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub(crate) seq: u64,
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) slots: Slots,
}

/// Where a span's per-entry (offset, length) slots are.
#[derive(Debug, Clone)]
pub(crate) enum Slots {
    /// In memory (the active segment): one per entry from the span's first.
    Active(Vec<(u32, u32)>),
    /// In the sealed segment's trailer: 8 bytes per entry from this file offset, written for the
    /// entries `first..first + count` (a later truncation may have shortened the span since).
    Sealed { at: u64 },
}

/// Where to find one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    /// The record is at this offset and length of the segment.
    At { seq: u64, off: u32, len: u32 },
    /// Its slot is at this offset of the (sealed) segment.
    Slot { seq: u64, at: u64 },
}

impl Loc {
    /// The segment it is in.
    pub(crate) fn seq(&self) -> u64 {
        match *self {
            Loc::At { seq, .. } | Loc::Slot { seq, .. } => seq,
        }
    }
}

/// The small values of a group, as opaque encodings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Values {
    pub(crate) vote: Option<Bytes>,
    pub(crate) committed: Option<Bytes>,
    pub(crate) purged: Option<Bytes>,
}

/// One group's log.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupLog {
    /// Entries below this are gone (purged).
    pub(crate) first: u64,
    /// Its newest entry, if it has any at or above `first`.
    pub(crate) last: Option<u64>,
    pub(crate) values: Values,
    /// In segment order; spans never overlap.
    pub(crate) spans: Vec<Span>,
}

impl GroupLog {
    /// Records entry `index` at `off..off + len` of active segment `seq`. An index at or below the
    /// last replaces it and everything after it, as a Raft append does.
    pub(crate) fn append(&mut self, index: u64, seq: u64, off: u32, len: u32) -> Result<(), String> {
        match self.last {
            Some(l) if index > l + 1 => return Err(format!("entry {index} after {l} leaves a hole")),
            None if index < self.first => {
                return Err(format!("entry {index} is below the purge point {}", self.first));
            }
            _ => {}
        }
        self.truncate(index);
        self.last = Some(index);
        if let Some(Span { seq: s, last, slots: Slots::Active(v), .. }) = self.spans.last_mut()
            && *s == seq
            && *last + 1 == index
        {
            *last = index;
            v.push((off, len));
            return Ok(());
        }
        self.spans.push(Span { seq, first: index, last: index, slots: Slots::Active(vec![(off, len)]) });
        Ok(())
    }

    /// Entries at and above `from` are gone.
    pub(crate) fn truncate(&mut self, from: u64) {
        self.spans.retain(|s| s.first < from);
        if let Some(s) = self.spans.last_mut()
            && s.last >= from
        {
            s.last = from - 1;
            if let Slots::Active(v) = &mut s.slots {
                v.truncate((from - s.first) as usize);
            }
        }
        self.last = match self.last {
            Some(l) if l >= from => from.checked_sub(1).filter(|&p| p >= self.first),
            l => l,
        };
    }

    /// Entries below `first` are gone.
    pub(crate) fn purge(&mut self, first: u64) {
        if first <= self.first {
            return;
        }
        self.first = first;
        self.spans.retain(|s| s.last >= first);
        if self.last.is_some_and(|l| l < first) {
            self.last = None;
        }
    }

    /// Where entry `index` is, if the group has it.
    pub(crate) fn locate(&self, index: u64) -> Option<Loc> {
        if index < self.first || self.last.is_none_or(|l| index > l) {
            return None;
        }
        let i = self.spans.partition_point(|s| s.last < index);
        let s = self.spans.get(i).filter(|s| s.first <= index)?;
        let k = index - s.first;
        Some(match &s.slots {
            Slots::Active(v) => {
                let (off, len) = *v.get(k as usize)?;
                Loc::At { seq: s.seq, off, len }
            }
            Slots::Sealed { at } => Loc::Slot { seq: s.seq, at: at + k * 8 },
        })
    }
}

/// Every group of the log.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    pub(crate) groups: BTreeMap<u32, GroupLog>,
}

impl Groups {
    /// The group, created empty on first use.
    pub(crate) fn group(&mut self, g: u32) -> &mut GroupLog {
        self.groups.entry(g).or_default()
    }

    /// Whether any group still needs segment `seq`.
    pub(crate) fn references(&self, seq: u64) -> bool {
        self.groups.values().any(|g| g.spans.iter().any(|s| s.seq == seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, off: u32) -> Option<Loc> {
        Some(Loc::At { seq, off, len: 10 })
    }

    #[test]
    fn appends_truncations_and_purges_keep_spans_exact() {
        let mut g = GroupLog::default();
        for i in 0..5 {
            g.append(i, 1, i as u32 * 10, 10).unwrap();
        }
        for i in 5..8 {
            g.append(i, 2, i as u32 * 10, 10).unwrap();
        }
        assert_eq!(g.spans.len(), 2);
        assert_eq!(g.locate(4), at(1, 40));
        assert_eq!(g.locate(6), at(2, 60));
        // An append at 3 replaces 3.. (in both segments).
        g.append(3, 2, 500, 10).unwrap();
        assert_eq!(g.last, Some(3));
        assert_eq!(g.locate(3), at(2, 500));
        assert_eq!(g.locate(2), at(1, 20));
        assert_eq!(g.locate(4), None);
        assert!(g.append(5, 2, 0, 10).is_err(), "a hole must be refused");
        g.truncate(2);
        assert_eq!(g.last, Some(1));
        assert_eq!(g.spans.len(), 1);
        g.purge(1);
        assert_eq!(g.locate(0), None);
        assert_eq!(g.locate(1), at(1, 10));
        g.purge(9);
        assert_eq!((g.last, g.spans.len()), (None, 0));
        assert!(g.append(3, 3, 0, 10).is_err(), "below the purge point");
        g.append(9, 3, 0, 10).unwrap();
        assert_eq!(g.locate(9), at(3, 0));
    }

    #[test]
    fn sealed_spans_point_into_their_trailer() {
        let mut g = GroupLog::default();
        g.append(10, 1, 0, 10).unwrap();
        g.append(11, 1, 10, 10).unwrap();
        g.spans[0].slots = Slots::Sealed { at: 4096 };
        assert_eq!(g.locate(11), Some(Loc::Slot { seq: 1, at: 4104 }));
        let mut all = Groups::default();
        all.group(7).append(0, 3, 0, 1).unwrap();
        assert!(all.references(3) && !all.references(1));
    }
}
