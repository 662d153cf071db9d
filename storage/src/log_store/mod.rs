//! The Raft log of one group, kept in the node's segment log ([`crate::seglog`]): openraft's
//! [`RaftLogStorage`].
//!
//! **Durability rule.** An appended entry is reported flushed (`IOFlushed::io_completed`) only by
//! the segment log's writer, after the `fdatasync` that covers it. A vote is saved the same way and
//! `save_vote` returns only then. The test `log_store::tests::flush_callback_waits_for_fsync`
//! fails if either is reported early.
//!
//! **Two stores, two rules.** State-machine data lives in RocksDB, the log in the segment log, each
//! with its own fsync. (1) Applied state is never ahead of the durable log: a state machine calls
//! [`LogStore::wait_durable`] with the last index a write covers before it writes. (2) The log is
//! never purged past what RocksDB holds durably applied: [`LogStore::purge`] fsyncs RocksDB's WAL
//! and reads the applied id before it lets anything go. Tests: `log_store::tests::rules`.

mod tail_cache;

use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use tail_cache::TailCache;
use tokio::sync::oneshot;
use tokio::sync::watch;

use crate::codec::Writer;
use crate::error::Result;
use crate::error::StorageError;
use crate::raft_codec;
use crate::seglog::Done;
use crate::seglog::LogOp;
use crate::store::Store;
use crate::types::Entry;
use crate::types::GroupId;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;

/// What `purge` does with entries openraft no longer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeMode {
    /// Delete them (the NameServer: its snapshot holds everything).
    Delete,
    /// Keep them on disk until retention removes them: for a broker group the log *is* the
    /// CommitLog, so message bytes must outlive openraft's interest in them.
    KeepForRetention,
}

/// Tuning of one group's log.
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// What purge does.
    pub purge_mode: PurgeMode,
    /// Memory budget of the in-memory tail of the log, bytes.
    pub tail_cache_bytes: usize,
    /// Most bytes of entries in one AppendEntries request (kept under tonic's message limit).
    pub append_bytes_max: usize,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self { purge_mode: PurgeMode::Delete, tail_cache_bytes: 4 << 20, append_bytes_max: 2 << 20 }
    }
}

#[derive(Debug)]
struct LogMeta {
    vote: Option<Vote>,
    last_purged: Option<LogId>,
    last_log_id: Option<LogId>,
    committed: Option<LogId>,
    cache: TailCache,
}

struct Inner {
    group: GroupId,
    store: Arc<Store>,
    opts: LogStoreOptions,
    meta: Mutex<LogMeta>,
    /// With [`PurgeMode::KeepForRetention`]: entries below this hold no retained message, so a
    /// purge may delete them; entries at or above it stay whatever openraft purges.
    retention_floor: AtomicU64,
    /// How far the log is durable (see [`Durable`]).
    durable: watch::Sender<Durable>,
}

/// The durable prefix of the log: every entry below `end` is fsynced. A truncation lowers `end`
/// and starts a new `era`; an fsync reported for an append queued in an earlier era (whose
/// entries may have been replaced since) does not raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Durable {
    era: u64,
    end: u64,
    failed: bool,
}

/// The log store of one group. Cloning shares it; it is also its own log reader.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("group", &self.inner.group).finish_non_exhaustive()
    }
}

fn corrupt(what: &'static str, reason: impl Into<String>) -> StorageError {
    StorageError::Corruption { what, reason: reason.into() }
}

impl LogStore {
    /// Opens `group`'s log in `store`, loading its vote, purge point and last entry. Blocking.
    pub fn open(store: Arc<Store>, group: GroupId, opts: LogStoreOptions) -> Result<LogStore> {
        let seg = store.seglog();
        let st = seg.group(group);
        let vote = st.vote.as_deref().map(raft_codec::decode_vote).transpose()?;
        let last_purged = st.purged.as_deref().map(raft_codec::decode_log_id).transpose()?;
        let committed = st.committed.as_deref().map(raft_codec::decode_log_id).transpose()?;
        let last_entry = match st.last {
            Some(i) => {
                let b = seg
                    .read(group, i)?
                    .ok_or_else(|| corrupt("raft log", format!("last entry {i} unreadable")))?;
                Some(raft_codec::decode_entry(&b)?.log_id)
            }
            None => None,
        };
        let last_log_id = match (last_entry, last_purged) {
            (Some(e), Some(p)) => Some(if e.index > p.index { e } else { p }),
            (e, p) => e.or(p),
        };
        let next = last_log_id.map_or(0, |l| l.index + 1);
        tracing::debug!(%group, ?vote, ?last_purged, ?last_log_id, "opened raft log");
        let meta = LogMeta {
            vote,
            last_purged,
            last_log_id,
            committed,
            cache: TailCache::new(next, opts.tail_cache_bytes),
        };
        // What the segment log recovered was fsynced when it opened.
        let (durable, _) = watch::channel(Durable { era: 0, end: next, failed: false });
        Ok(LogStore {
            inner: Arc::new(Inner {
                group,
                store,
                opts,
                meta: Mutex::new(meta),
                retention_floor: AtomicU64::new(0),
                durable,
            }),
        })
    }

    /// The group this log belongs to.
    pub fn group(&self) -> GroupId {
        self.inner.group
    }

    /// Sets the retention floor (broker groups): a later purge deletes entries below it only.
    pub fn set_retention_floor(&self, floor: u64) {
        self.inner.retention_floor.fetch_max(floor, Ordering::Relaxed);
    }

    /// The entry at `index`, if it is in the in-memory tail (recent entries usually are).
    pub fn cached(&self, index: u64) -> Option<Entry> {
        self.meta().cache.get(index, index.saturating_add(1), usize::MAX).0.into_iter().next()
    }

    /// The entry at `index`: from the in-memory tail, else from the segment log (including
    /// entries openraft purged but retention keeps). Blocking on a cache miss.
    pub fn entry(&self, index: u64) -> Result<Option<Entry>> {
        if let Some(e) = self.cached(index) {
            return Ok(Some(e));
        }
        match self.inner.store.seglog().read(self.inner.group, index)? {
            Some(b) => Ok(Some(raft_codec::decode_entry(&b)?)),
            None => Ok(None),
        }
    }

    /// Refuses a state machine whose applied id is past the end of this log: its state was made
    /// from entries the log no longer has (rule 1 broken, or the log lost its tail).
    pub fn check_applied(&self, applied: Option<&LogId>) -> Result<()> {
        let m = self.meta();
        let end = m.last_log_id.map(|l| l.index);
        match applied {
            Some(a) if end.is_none_or(|e| a.index > e) => Err(corrupt(
                "raft log",
                format!(
                    "group {}: state applied up to {} but the log ends at {end:?}",
                    self.inner.group, a.index
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Waits until every entry up to `index` is durable in the log. A state machine calls it
    /// before writing what it applied from those entries (rule 1 in the module doc).
    pub async fn wait_durable(&self, index: u64) -> Result<()> {
        // An index this log never took (openraft's storage suite applies entries it did not
        // append) has nothing to wait for; openraft applies only entries already submitted here.
        if self.meta().last_log_id.is_none_or(|l| index > l.index) {
            return Ok(());
        }
        let mut rx = self.inner.durable.subscribe();
        let d = rx.wait_for(|d| d.failed || d.end > index).await.map_err(|_| StorageError::Closed)?;
        if d.failed {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    fn meta(&self) -> MutexGuard<'_, LogMeta> {
        // A panic while holding this lock would be a bug in the cache bookkeeping; the state is
        // still usable (each method leaves it consistent before anything that can panic).
        self.inner.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `[start, end)` from the segment log, at most `bytes_max` bytes after the first entry.
    async fn read_db(&self, start: u64, end: u64, bytes_max: usize) -> Result<(Vec<Entry>, usize)> {
        let store = self.inner.store.clone();
        let group = self.inner.group;
        tokio::task::spawn_blocking(move || -> Result<(Vec<Entry>, usize)> {
            let seg = store.seglog();
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for i in start..end {
                let Some(b) = seg.read(group, i)? else { break };
                if !out.is_empty() && bytes + b.len() > bytes_max {
                    break;
                }
                bytes += b.len();
                let e = raft_codec::decode_entry(&b)?;
                if e.log_id.index != i {
                    return Err(corrupt("raft log", format!("index {i} holds entry {}", e.log_id)));
                }
                out.push(e);
            }
            Ok((out, bytes))
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
    }

    /// Entries `[start, end)`: from the segment log below the cache, from the cache above it. Stops early
    /// once `bytes_max` is reached (after at least one entry) or where the log has no entry.
    async fn get_range(&self, start: u64, end: u64, bytes_max: usize) -> Result<Vec<Entry>> {
        // Purged entries may still be on disk (retention, or a purge held back to what is durably
        // applied), but openraft sees none of them.
        let start = match self.meta().last_purged {
            Some(p) => start.max(p.index + 1),
            None => start,
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut next = start;
        // Loops only when the cache evicted entries while the log was read; they are written.
        while next < end {
            {
                let m = self.meta();
                if next >= m.cache.first() {
                    let budget = if out.is_empty() { bytes_max } else { bytes_max.saturating_sub(bytes) };
                    if budget == 0 {
                        return Ok(out);
                    }
                    out.extend(m.cache.get(next, end, budget).0);
                    return Ok(out);
                }
            }
            let first = self.meta().cache.first();
            let (older, b) = self.read_db(next, end.min(first), bytes_max.saturating_sub(bytes)).await?;
            let Some(last) = older.last() else {
                // Nothing on disk from `next` up to the cache: the log starts later (an empty or
                // purged prefix); what there is, is in the cache.
                next = first;
                continue;
            };
            next = last.log_id.index + 1;
            bytes += b;
            out.extend(older);
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(out)
    }

    async fn submit(&self, op: LogOp) -> io::Result<()> {
        self.inner.store.seglog().submit(op).await.map_err(io::Error::from)
    }

    /// A completion that runs `then` once the segment log has made the operation durable.
    fn done(
        &self,
        on_written: Option<Box<dyn FnOnce() + Send>>,
        then: impl FnOnce(std::result::Result<(), String>) + Send + 'static,
    ) -> Done {
        Done { on_written, on_durable: Box::new(then) }
    }
}

/// Raises the durable prefix to `end` if no truncation started a new era since `era`; a failure
/// marks the log failed, which wakes every waiter with an error.
fn mark_durable(
    durable: &watch::Sender<Durable>,
    era: u64,
    end: u64,
    result: &std::result::Result<(), String>,
) {
    durable.send_if_modified(|d| match result {
        Err(_) if !d.failed => {
            d.failed = true;
            true
        }
        Ok(()) if d.era == era && end > d.end => {
            d.end = end;
            true
        }
        _ => false,
    });
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(x) => x.saturating_add(1),
        Bound::Excluded(x) => *x,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let (start, end) = bounds(&range);
        Ok(self.get_range(start, end, usize::MAX).await?)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.meta().vote)
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        Ok(self.get_range(start, end, self.inner.opts.append_bytes_max).await?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let m = self.meta();
        Ok(LogState { last_purged_log_id: m.last_purged, last_log_id: m.last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    #[tracing::instrument(level = "debug", skip(self), fields(group = %self.inner.group))]
    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        // Vote must be persisted to disk before returning: wait for the fsync.
        let (tx, rx) = oneshot::channel();
        let done = self.done(None, move |r| drop(tx.send(r)));
        let vote_bytes = Bytes::from(raft_codec::encode_vote(vote));
        self.submit(LogOp::Vote { group: self.inner.group, vote: vote_bytes, done }).await?;
        rx.await.map_err(|_| io::Error::from(StorageError::Closed))?.map_err(io::Error::other)?;
        self.meta().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let Some(c) = committed else { return Ok(()) };
        self.meta().committed = Some(c);
        // Optional per openraft: noted, and written with the next turn of the log that writes
        // anything (never before the entry it names), durable with that turn's fsync.
        let committed = Bytes::from(raft_codec::encode_log_id(&c));
        self.submit(LogOp::Committed { group: self.inner.group, index: c.index, committed }).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.meta().committed)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = %self.inner.group))]
    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        let mut cached = Vec::new();
        for e in entries {
            let mut w = Writer::with_capacity(64);
            raft_codec::encode_entry(&mut w, &e);
            let b = Bytes::from(w.into_vec());
            encoded.push((e.index(), b.clone()));
            cached.push((e, b.len()));
        }
        let last = cached.last().map(|(e, _)| e.log_id);
        let seq = {
            let mut m = self.meta();
            let seq = m.cache.append(cached).map_err(|r| io::Error::from(corrupt("raft log append", r)))?;
            if let Some(last) = last {
                m.last_log_id = Some(last);
            }
            seq
        };
        if let Some(last) = last {
            tracing::trace!(index = last.index, term = last.leader_id.term, "append queued");
        }
        // Readable now (from the cache); durable when the writer's fsync completes the callback.
        let inner = self.inner.clone();
        let on_written: Box<dyn FnOnce() + Send> = Box::new(move || {
            inner.meta.lock().unwrap_or_else(|e| e.into_inner()).cache.mark_written(seq);
        });
        let (inner, era) = (self.inner.clone(), self.inner.durable.borrow().era);
        let end = last.map_or(0, |l| l.index + 1);
        let done = self.done(Some(on_written), move |r| {
            mark_durable(&inner.durable, era, end, &r);
            callback.io_completed(r.map_err(io::Error::other));
        });
        self.submit(LogOp::Append { group: self.inner.group, entries: encoded, done }).await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        tracing::debug!(group = %self.inner.group, ?last_log_id, "truncate log");
        let from = last_log_id.map_or(0, |l| l.index + 1);
        {
            let mut m = self.meta();
            m.cache.truncate_after(last_log_id.map(|l| l.index));
            // Truncating after an index past the end changes nothing.
            let keep = match (last_log_id, m.last_log_id) {
                (Some(t), Some(cur)) if t.index >= cur.index => Some(cur),
                (t, _) => t,
            };
            m.last_log_id = keep.or(m.last_purged);
            // Entries from `from` on may be replaced: they are durable again only once their
            // replacements are.
            self.inner.durable.send_modify(|d| {
                d.era += 1;
                d.end = d.end.min(from);
            });
        }
        // Ordered before the appends that follow; written (and fsynced: truncations are rare)
        // before this returns, so a reopened log never shows the removed entries.
        self.submit(LogOp::Truncate { group: self.inner.group, from }).await?;
        self.sync().await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        tracing::debug!(group = %self.inner.group, %log_id, "purge log");
        {
            let mut m = self.meta();
            m.cache.purge(log_id.index);
            m.last_purged = Some(log_id);
            if m.last_log_id.is_none_or(|l| l.index < log_id.index) {
                m.last_log_id = Some(log_id);
            }
        }
        // What may go from disk: everything purged (NameServer), or, for a CommitLog, only what
        // retention released (openraft also purges after installing a snapshot, whose retained
        // entries were just written).
        let wanted = match self.inner.opts.purge_mode {
            PurgeMode::Delete => log_id.index + 1,
            PurgeMode::KeepForRetention => {
                (log_id.index + 1).min(self.inner.retention_floor.load(Ordering::Relaxed))
            }
        };
        // Rule 2: never past what RocksDB holds durably applied, or a crash would leave a state
        // machine that needs entries the log no longer has.
        let first = self.durably_applied_end(wanted).await?;
        let purged = Bytes::from(raft_codec::encode_log_id(&log_id));
        self.submit(LogOp::Purge { group: self.inner.group, first, purged: Some(purged) }).await?;
        self.sync().await
    }
}

impl LogStore {
    /// Waits until everything queued so far is written and fsynced.
    async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(LogOp::Sync { done: self.done(None, move |r| drop(tx.send(r))) }).await?;
        rx.await.map_err(|_| io::Error::from(StorageError::Closed))?.map_err(io::Error::other)
    }

    /// `wanted`, or less: the end of what RocksDB holds durably applied for this group (its WAL
    /// fsynced first).
    async fn durably_applied_end(&self, wanted: u64) -> io::Result<u64> {
        let store = &self.inner.store;
        store.writer().write(rocksdb::WriteBatch::default(), true).await.map_err(io::Error::from)?;
        let (s, group) = (store.clone(), self.inner.group);
        let applied = tokio::task::spawn_blocking(move || crate::snapshot::applied_index(&s, group))
            .await
            .map_err(io::Error::other)??;
        let end = applied.map_or(0, |a| a + 1);
        if end < wanted {
            tracing::warn!(group = %group, wanted, applied_end = end, "log purge held back to what is durably applied");
        }
        Ok(wanted.min(end))
    }
}

#[cfg(test)]
mod rules;
#[cfg(test)]
mod tests;
