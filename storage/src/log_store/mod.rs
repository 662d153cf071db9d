//! The Raft log of one group, stored in the node's RocksDB: openraft's [`RaftLogStorage`].
//!
//! **Durability rule.** An appended entry is reported flushed (`IOFlushed::io_completed`) only by
//! the writer's sync thread, and only after `flush_wal(true)` returned for a write that contained
//! it (see [`crate::writer`]). A vote is saved the same way and `save_vote` returns only then.
//! The test `log_store::tests::flush_callback_waits_for_fsync` fails if either is reported early.

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
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;
use tail_cache::TailCache;

use crate::codec::Writer;
use crate::error::Result;
use crate::error::StorageError;
use crate::keys;
use crate::keys::raft_tag;
use crate::raft_codec;
use crate::store::CF_LOG;
use crate::store::CF_RAFT;
use crate::store::Store;
use crate::types::Entry;
use crate::types::GroupId;
use crate::types::LogId;
use crate::types::TypeConfig;
use crate::types::Vote;
use crate::writer::Done;
use crate::writer::WriteOp;

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
        let db = store.db();
        let raft_cf = store.cf(CF_RAFT)?;
        let vote = db
            .get_pinned_cf(raft_cf, keys::raft_key(group, raft_tag::VOTE))?
            .map(|b| raft_codec::decode_vote(&b))
            .transpose()?;
        let read_log_id = |tag| -> Result<Option<LogId>> {
            Ok(db
                .get_pinned_cf(raft_cf, keys::raft_key(group, tag))?
                .map(|b| raft_codec::decode_log_id(&b))
                .transpose()?)
        };
        let last_purged = read_log_id(raft_tag::LAST_PURGED)?;
        let committed = read_log_id(raft_tag::COMMITTED)?;

        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::group_start(group));
        ro.set_iterate_upper_bound(keys::group_end(group));
        let mut it = db.iterator_cf_opt(store.cf(CF_LOG)?, ro, IteratorMode::End);
        let last_entry = match it.next() {
            Some(kv) => {
                let (_, v) = kv?;
                Some(raft_codec::decode_entry(&Bytes::from(v.into_vec()))?.log_id)
            }
            None => None,
        };
        drop(it);
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
        Ok(LogStore {
            inner: Arc::new(Inner {
                group,
                store,
                opts,
                meta: Mutex::new(meta),
                retention_floor: AtomicU64::new(0),
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

    fn meta(&self) -> MutexGuard<'_, LogMeta> {
        // A panic while holding this lock would be a bug in the cache bookkeeping; the state is
        // still usable (each method leaves it consistent before anything that can panic).
        self.inner.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `[start, end)` from RocksDB, at most `bytes_max` bytes after the first entry.
    async fn read_db(&self, start: u64, end: u64, bytes_max: usize) -> Result<(Vec<Entry>, usize)> {
        let store = self.inner.store.clone();
        let group = self.inner.group;
        tokio::task::spawn_blocking(move || -> Result<(Vec<Entry>, usize)> {
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(keys::log_key(group, end).to_vec());
            let from = keys::log_key(group, start);
            let it = store.db().iterator_cf_opt(
                store.cf(CF_LOG)?,
                ro,
                IteratorMode::From(&from, Direction::Forward),
            );
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for kv in it {
                let (k, v) = kv?;
                if !out.is_empty() && bytes + v.len() > bytes_max {
                    break;
                }
                bytes += v.len();
                let e = raft_codec::decode_entry(&Bytes::from(v.into_vec()))?;
                if keys::log_key_index(&k) != Some(e.log_id.index) {
                    return Err(corrupt("raft log", format!("key {k:?} holds entry {}", e.log_id)));
                }
                out.push(e);
            }
            Ok((out, bytes))
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
    }

    /// Entries `[start, end)`: from RocksDB below the cache, from the cache above it. Stops early
    /// once `bytes_max` is reached (after at least one entry) or where the log has no entry.
    async fn get_range(&self, start: u64, end: u64, bytes_max: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut next = start;
        // Loops only when the cache evicted entries while RocksDB was read; they are in RocksDB.
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

    async fn submit(&self, batch: WriteBatch, sync: bool, done: Done) -> io::Result<()> {
        self.inner.store.writer().submit(WriteOp { batch, sync, done }).await.map_err(io::Error::from)
    }

    async fn write_and_wait(&self, batch: WriteBatch, sync: bool) -> io::Result<()> {
        self.inner.store.writer().write(batch, sync).await.map_err(io::Error::from)
    }
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
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.inner.store.cf(CF_RAFT)?,
            keys::raft_key(self.inner.group, raft_tag::VOTE),
            raft_codec::encode_vote(vote),
        );
        // Vote must be persisted to disk before returning: sync, and wait for the fsync.
        self.write_and_wait(batch, true).await?;
        self.meta().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let Some(c) = committed else { return Ok(()) };
        self.meta().committed = Some(c);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.inner.store.cf(CF_RAFT)?,
            keys::raft_key(self.inner.group, raft_tag::COMMITTED),
            raft_codec::encode_log_id(&c),
        );
        // Optional per openraft; queued behind the appends it covers, synced with them.
        self.submit(batch, false, Done::Detached).await
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
        let cf = self.inner.store.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        let mut w = Writer::with_capacity(512);
        let mut cached = Vec::new();
        for e in entries {
            raft_codec::encode_entry(&mut w, &e);
            batch.put_cf(cf, keys::log_key(self.inner.group, e.index()), w.as_slice());
            cached.push((e, w.len()));
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
        self.submit(batch, true, Done::Flushed { callback, on_written: Some(on_written) }).await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        tracing::debug!(group = %self.inner.group, ?last_log_id, "truncate log");
        {
            let mut m = self.meta();
            m.cache.truncate_after(last_log_id.map(|l| l.index));
            // Truncating after an index past the end changes nothing.
            let keep = match (last_log_id, m.last_log_id) {
                (Some(t), Some(cur)) if t.index >= cur.index => Some(cur),
                (t, _) => t,
            };
            m.last_log_id = keep.or(m.last_purged);
        }
        let from = last_log_id.map_or(0, |l| l.index + 1);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.inner.store.cf(CF_LOG)?,
            &keys::log_key(self.inner.group, from)[..],
            &keys::group_end(self.inner.group)[..],
        );
        // Ordered before the appends that follow; those appends' fsync makes it durable.
        self.write_and_wait(batch, false).await
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
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.inner.store.cf(CF_RAFT)?,
            keys::raft_key(self.inner.group, raft_tag::LAST_PURGED),
            raft_codec::encode_log_id(&log_id),
        );
        // What may go from disk: everything purged (NameServer), or, for a CommitLog, only what
        // retention released (openraft also purges after installing a snapshot, whose retained
        // entries were just written).
        let delete_end = match self.inner.opts.purge_mode {
            PurgeMode::Delete => log_id.index + 1,
            PurgeMode::KeepForRetention => {
                (log_id.index + 1).min(self.inner.retention_floor.load(Ordering::Relaxed))
            }
        };
        if delete_end > 0 {
            batch.delete_range_cf(
                self.inner.store.cf(CF_LOG)?,
                &keys::group_start(self.inner.group)[..],
                &keys::log_key(self.inner.group, delete_end)[..],
            );
        }
        self.write_and_wait(batch, false).await
    }
}

#[cfg(test)]
mod tests;
