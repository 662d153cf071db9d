//! The segment log: every broker group's Raft log in one append-only stream of segment files, in
//! which a message's bytes are written once (the design and its measured choice over raft-engine
//! are in ARCHITECTURE.md, "The log engine").
//!
//! - **Records** ([`record`]): entries, votes, committed ids, purges and truncations of every
//!   group, each with its own CRC, in the order they were queued.
//! - **Segments** ([`segment`]): preallocated files of `segment_bytes`; a full one is sealed with
//!   the slots of its entries and a trailer carrying every group's retained range and values, so
//!   opening reads trailers and scans only the active segment ([`recover`]).
//! - **One writer thread** ([`writer`]): one `pwrite` per turn, one `fdatasync` for every group.
//! - **Reads** ([`SegLog::read`]): one `pread` of the entry's record (plus one of its slot for a
//!   sealed segment), CRC-checked; a record that fails its check is an error naming file and
//!   offset, never returned.
//! - **Purge** is by whole segments: a sealed segment goes once no group has an entry in it at or
//!   above its purge point (and a newer sealed segment carries the groups' values).
//!
//! This module knows no Raft types: entries and values are opaque bytes, encoded by the log store.

mod record;
mod recover;
mod segment;
mod state;
mod writer;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::error::StorageError;
use crate::types::GroupId;
use crate::writer::WriterStats;
use state::Groups;
use state::Loc;

/// Tuning of a segment log.
#[derive(Debug, Clone)]
pub struct SegLogOptions {
    /// Bytes of a segment file (the unit of purge).
    pub segment_bytes: u64,
    /// Operations the writer's queue holds before submitters wait.
    pub queue_len: usize,
    /// Runs on the writer thread before each fsync of a turn. Tests hold it to keep entries
    /// written but not yet durable; `None` in production.
    pub before_sync: Option<SyncHook>,
}

impl Default for SegLogOptions {
    fn default() -> Self {
        Self { segment_bytes: 64 << 20, queue_len: 8192, before_sync: None }
    }
}

/// A hook the writer runs before an fsync (see [`SegLogOptions::before_sync`]).
#[derive(Clone)]
pub struct SyncHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for SyncHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHook")
    }
}

/// Called once an operation's bytes are written (readable), before the fsync.
pub type OnWritten = Box<dyn FnOnce() + Send>;
/// Called once an operation is durable, or with the error that stopped the log.
pub type OnDurable = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// What to call once an operation is written, and once it is durable (or failed).
pub struct Done {
    /// Runs after the bytes are written and readable through [`SegLog::read`], before the fsync.
    pub on_written: Option<OnWritten>,
    /// Runs after the fsync that covers the operation (or with the error that stopped the log).
    pub on_durable: OnDurable,
}

/// One operation on the log. Operations are written in the order they are queued.
pub enum LogOp {
    /// Entries `(index, encoding)` of a group, in index order; an index at or below the group's
    /// last replaces the tail from there. Durable before `done.on_durable`.
    Append {
        /// The group.
        group: GroupId,
        /// `(log index, encoded entry)`.
        entries: Vec<(u64, Bytes)>,
        /// Completion.
        done: Done,
    },
    /// The group's vote; durable before `done.on_durable`.
    Vote {
        /// The group.
        group: GroupId,
        /// Encoded vote.
        vote: Bytes,
        /// Completion.
        done: Done,
    },
    /// The group's committed id. It does not wake the writer: it is noted and written with the
    /// next turn that writes anything else (once the entry it names is written), so it costs no
    /// hand-off of its own; durable with that turn's fsync, nobody waits (openraft needs it only
    /// as a hint at restart).
    Committed {
        /// The group.
        group: GroupId,
        /// Index of the committed log id.
        index: u64,
        /// Encoded log id.
        committed: Bytes,
    },
    /// The group's entries at and above `from` are gone; durable with the next fsync.
    Truncate {
        /// The group.
        group: GroupId,
        /// First index removed.
        from: u64,
    },
    /// The group's entries below `first` are gone; `purged`, if given, is kept as its purge
    /// value. Fsynced at once; then segments nobody needs are deleted.
    Purge {
        /// The group.
        group: GroupId,
        /// First index kept.
        first: u64,
        /// Encoded purged log id (`None` keeps the one it has).
        purged: Option<Bytes>,
    },
    /// Nothing to write: completes after the next fsync (everything queued before is durable).
    Sync {
        /// Completion.
        done: Done,
    },
}

/// What the log holds of one group when asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Entries below this are gone.
    pub first: u64,
    /// The newest entry, if any.
    pub last: Option<u64>,
    /// Encoded vote.
    pub vote: Option<Bytes>,
    /// Encoded committed id.
    pub committed: Option<Bytes>,
    /// Encoded purged id.
    pub purged: Option<Bytes>,
}

struct View {
    groups: Groups,
    files: BTreeMap<u64, Arc<File>>,
}

struct Shared {
    dir: PathBuf,
    view: RwLock<View>,
    stats: Arc<WriterStats>,
    failure: Mutex<Option<String>>,
    /// Committed ids noted since the writer's last turn, per group: `(index, encoded log id)`.
    committed: Mutex<std::collections::BTreeMap<u32, (u64, Bytes)>>,
}

/// A node's segment log. Cloning shares it.
#[derive(Clone)]
pub struct SegLog {
    shared: Arc<Shared>,
    tx: mpsc::Sender<LogOp>,
}

impl std::fmt::Debug for SegLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegLog").field("dir", &self.shared.dir).finish_non_exhaustive()
    }
}

fn corrupt(reason: String) -> StorageError {
    StorageError::Corruption { what: "segment log", reason }
}

impl SegLog {
    /// Opens (or creates) the log in `dir`, recovering what the last run left, and starts its
    /// writer thread. Blocking.
    pub fn open(dir: &Path, opts: SegLogOptions) -> Result<(SegLog, JoinHandle<()>)> {
        let r = recover::open(dir, opts.segment_bytes)?;
        let file = r.files.get(&r.active).cloned().ok_or_else(|| corrupt("active segment missing".into()))?;
        tracing::info!(dir = %dir.display(), segments = r.files.len(), active = r.active, offset = r.offset, epoch = r.epoch, groups = r.groups.groups.len(), "opened segment log");
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            view: RwLock::new(View { groups: r.groups, files: r.files }),
            stats: Arc::new(WriterStats::default()),
            failure: Mutex::new(None),
            committed: Mutex::new(Default::default()),
        });
        let w = writer::WriterState {
            dir: dir.to_path_buf(),
            segment_bytes: opts.segment_bytes,
            before_sync: opts.before_sync,
            epoch: r.epoch,
            seq: r.active,
            file,
            offset: r.offset,
        };
        let (tx, rx) = mpsc::channel(opts.queue_len);
        let s = shared.clone();
        let handle =
            std::thread::Builder::new().name("raftmq-seglog".into()).spawn(move || writer::run(&s, w, rx))?;
        Ok((SegLog { shared, tx }, handle))
    }

    /// Queues `op`; waits (asynchronously) while the queue is full, which is the backpressure.
    pub async fn submit(&self, op: LogOp) -> Result<()> {
        match self.note(op) {
            None => Ok(()),
            Some(op) => self.tx.send(op).await.map_err(|_| StorageError::Closed),
        }
    }

    /// Queues `op` from a thread outside the async runtime, waiting while the queue is full.
    pub fn submit_blocking(&self, op: LogOp) -> Result<()> {
        match self.note(op) {
            None => Ok(()),
            Some(op) => self.tx.blocking_send(op).map_err(|_| StorageError::Closed),
        }
    }

    /// Notes a committed id for the writer's next turn (see [`LogOp::Committed`]); other
    /// operations are handed back to be queued.
    fn note(&self, op: LogOp) -> Option<LogOp> {
        let LogOp::Committed { group, index, committed } = op else { return Some(op) };
        let mut pending = self.shared.committed.lock().unwrap_or_else(|e| e.into_inner());
        if pending.get(&group.0).is_none_or(|(noted, _)| index >= *noted) {
            pending.insert(group.0, (index, committed));
        }
        None
    }

    /// Closes the queue: the writer finishes what is queued and ends.
    pub fn close(&mut self) {
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
    }

    /// What the log holds of `group` (as written, not necessarily durable yet).
    pub fn group(&self, group: GroupId) -> GroupState {
        let view = self.shared.view.read().unwrap_or_else(|e| e.into_inner());
        view.groups.groups.get(&group.0).map_or_else(GroupState::default, |g| GroupState {
            first: g.first,
            last: g.last,
            vote: g.values.vote.clone(),
            committed: g.values.committed.clone(),
            purged: g.values.purged.clone(),
        })
    }

    /// The encoding of `group`'s entry `index`, if the log holds it (written; not necessarily
    /// durable yet). Checks the record's CRC; a mismatch is an error naming file and offset.
    /// Blocking (one or two `pread`s).
    pub fn read(&self, group: GroupId, index: u64) -> Result<Option<Bytes>> {
        let (loc, file) = {
            let view = self.shared.view.read().unwrap_or_else(|e| e.into_inner());
            let Some(loc) = view.groups.groups.get(&group.0).and_then(|g| g.locate(index)) else {
                return Ok(None);
            };
            let seq = loc.seq();
            let file =
                view.files.get(&seq).cloned().ok_or_else(|| corrupt(format!("segment {seq} is not open")))?;
            (loc, file)
        };
        let (seq, off, len) = match loc {
            Loc::At { seq, off, len } => (seq, off, len),
            Loc::Slot { seq, at } => {
                let (off, len) = segment::read_slot(&file, at)?;
                (seq, off, len)
            }
        };
        let place = || format!("{} offset {off}", segment::path(&self.shared.dir, seq).display());
        if (len as usize) < record::HEADER_LEN {
            return Err(corrupt(format!(
                "{}: slot of group {group} entry {index} has length {len}",
                place()
            )));
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, u64::from(off)).map_err(|e| corrupt(format!("{}: {e}", place())))?;
        match record::parse(&buf, seq) {
            record::Parsed::Record(h)
                if h.kind == record::Kind::Entry
                    && h.group == group.0
                    && h.index == index
                    && h.len == len =>
            {
                Ok(Some(Bytes::from(buf).slice(record::HEADER_LEN..)))
            }
            record::Parsed::Record(h) => Err(corrupt(format!(
                "{}: expected group {group} entry {index}, found {:?} of group {} index {}",
                place(),
                h.kind,
                h.group,
                h.index
            ))),
            record::Parsed::End => {
                Err(corrupt(format!("{}: group {group} entry {index}: nothing written there", place())))
            }
            record::Parsed::Bad(why) => {
                Err(corrupt(format!("{}: group {group} entry {index}: {why}", place())))
            }
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.shared.stats
    }

    /// The error that stopped the writer, if one did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The segment files the log keeps now, oldest first.
    pub fn segments(&self) -> Vec<u64> {
        self.shared.view.read().unwrap_or_else(|e| e.into_inner()).files.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests;
