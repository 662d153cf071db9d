//! Writing a broker snapshot's retained entries into the segment log when a replica installs it.
//!
//! openraft never appends the entries a snapshot covers; the state machine writes them, because
//! for a broker group the log is the CommitLog and the replica must serve those messages. The
//! replica's own log is kept when it already holds the snapshot's last entry and everything from
//! the snapshot's first retained entry on; otherwise it is replaced by the snapshot's entries (and
//! any entries after the snapshot that agree with it are written again behind them). Everything
//! is fsynced before the state machine records it applied them.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::Result;
use crate::error::StorageError;
use crate::raft_codec;
use crate::seglog::Done;
use crate::seglog::LogOp;
use crate::seglog::SegLog;
use crate::store::Store;
use crate::types::GroupId;
use crate::types::LogId;

/// Bytes of entries per append while installing.
const CHUNK_BYTES: usize = 4 << 20;

/// An install of retained entries in progress. Blocking: run it off the runtime.
pub(crate) struct LogInstall {
    seg: SegLog,
    group: GroupId,
    /// The replica's log already holds the entries: nothing to write.
    skip: bool,
    next: u64,
    chunk: Vec<(u64, Bytes)>,
    chunk_bytes: usize,
    /// Entries after the snapshot that agree with it, to write again behind its entries.
    tail: Vec<(u64, Bytes)>,
}

fn corrupt(reason: String) -> StorageError {
    StorageError::Corruption { what: "snapshot install", reason }
}

fn no_wait() -> Done {
    Done { on_written: None, on_durable: Box::new(|_| {}) }
}

impl LogInstall {
    /// Starts installing entries `floor..=last` of `group`.
    pub(crate) fn start(
        store: &Store,
        group: GroupId,
        floor: u64,
        last: Option<LogId>,
    ) -> Result<LogInstall> {
        let seg = store.seglog().clone();
        let last =
            last.ok_or_else(|| corrupt(format!("group {group}: log entries in a snapshot of nothing")))?;
        let st = seg.group(group);
        let agrees = match st.last {
            Some(b) if b >= last.index => match seg.read(group, last.index)? {
                Some(e) => raft_codec::decode_entry(&e)?.log_id == last,
                None => false,
            },
            _ => false,
        };
        let mut me = LogInstall {
            seg,
            group,
            skip: false,
            next: floor,
            chunk: Vec::new(),
            chunk_bytes: 0,
            tail: Vec::new(),
        };
        if agrees && st.first <= floor {
            tracing::info!(%group, floor, last = %last, "snapshot entries already in the log; keeping it");
            me.skip = true;
            return Ok(me);
        }
        if agrees && let Some(b) = st.last {
            for i in last.index + 1..=b {
                let e = me
                    .seg
                    .read(group, i)?
                    .ok_or_else(|| corrupt(format!("group {group} entry {i} unreadable")))?;
                me.tail.push((i, e));
            }
        }
        tracing::info!(%group, floor, last = %last, kept_after = me.tail.len(), "replacing the log with the snapshot's entries");
        me.submit(LogOp::Truncate { group, from: 0 })?;
        me.submit(LogOp::Purge { group, first: floor, purged: None })?;
        Ok(me)
    }

    fn submit(&self, op: LogOp) -> Result<()> {
        self.seg.submit_blocking(op)
    }

    fn flush(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.chunk);
        self.chunk_bytes = 0;
        self.submit(LogOp::Append { group: self.group, entries, done: no_wait() })
    }

    /// Adds entry `index` (the next one).
    pub(crate) fn push(&mut self, index: u64, entry: Bytes) -> Result<()> {
        if self.skip {
            return Ok(());
        }
        if index != self.next {
            return Err(corrupt(format!("group {}: entry {index} where {} was due", self.group, self.next)));
        }
        self.next += 1;
        self.chunk_bytes += entry.len();
        self.chunk.push((index, entry));
        if self.chunk_bytes >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the rest and waits until all of it is durable.
    pub(crate) fn finish(mut self) -> Result<()> {
        if self.skip {
            return Ok(());
        }
        self.chunk.append(&mut self.tail);
        self.flush()?;
        let (tx, rx) = oneshot::channel();
        self.submit(LogOp::Sync {
            done: Done { on_written: None, on_durable: Box::new(move |r| drop(tx.send(r))) },
        })?;
        rx.blocking_recv()
            .map_err(|_| StorageError::Closed)?
            .map_err(|e| StorageError::Io(std::io::Error::other(e)))
    }
}
