//! The node-wide RocksDB writer: every state-machine write of every group goes through it
//! (except a snapshot install, which writes its records itself while the group's Raft waits for
//! it). The Raft logs have their own writer ([`crate::seglog`]).
//!
//! **Why threads.** RocksDB calls block, and an fsync blocks for milliseconds; on 2 cores a tokio
//! worker stuck in either stalls heartbeats of every group. So async code only builds a
//! [`WriteBatch`] and hands it over a bounded channel; dedicated OS threads do the I/O.
//!
//! **Two stages.** The write thread takes batches in queue order and writes them (WAL, no
//! sync). Batches that need durability (a log purge first makes applied state durable, see
//! [`crate::log_store`]) then wait for the sync thread, which runs one `flush_wal(true)` for
//! everything written so far and only then completes them. While one fsync runs, the next batches
//! are already being written; they all share the next fsync.
//!
//! **Ordering.** One queue, written in order, and synced completions in the same order. Unsynced
//! writes complete as soon as they are written. A completion is handed to the sync thread only
//! after its write returned, and the sync thread takes its list before calling `flush_wal`, so
//! the fsync covers every write it completes. A failed write fails every later one.

use std::sync::Arc;
use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use rocksdb::DB;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::error::StorageError;

/// Most operations one writer turn takes from the queue before it writes them.
const DRAIN_OPS_MAX: usize = 4096;

/// What to do once a write is done.
pub(crate) enum Done {
    /// Wake an async caller.
    Notify(oneshot::Sender<Result<(), StorageError>>),
}

impl Done {
    fn complete(self, result: &Result<(), String>) {
        match self {
            Done::Notify(tx) => {
                let _ = tx.send(result.clone().map_err(|r| StorageError::Io(std::io::Error::other(r))));
            }
        }
    }
}

/// One unit of work for a writer.
pub(crate) struct WriteOp {
    pub(crate) batch: WriteBatch,
    /// Whether the write must be fsynced before `done` fires.
    pub(crate) sync: bool,
    pub(crate) done: Done,
}

/// Counters that show how well group commit works.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Write operations performed.
    pub ops: AtomicU64,
    /// Operations that waited for an fsync (the callbacks the fsyncs served).
    pub synced_ops: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Longest single `flush_wal(true)`, microseconds (reset by whoever reads it).
    pub sync_micros_max: AtomicU64,
    /// Every `flush_wal(true)`'s time (its count is the number of fsyncs).
    pub sync_latency: crate::latency::LatencyHistogram,
    /// Time spent writing batches, microseconds.
    pub write_micros: AtomicU64,
}

/// Completions waiting for the next fsync, and whether a write failed (sticky: nothing after a
/// failed write may be reported durable).
#[derive(Default)]
struct SyncQueue {
    waiting: Vec<Done>,
    failure: Option<String>,
    closed: bool,
}

struct SyncShared {
    queue: Mutex<SyncQueue>,
    ready: Condvar,
}

/// Handle to a writer. Cloning shares the threads.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<WriteOp>,
    stats: Arc<WriterStats>,
}

impl Writer {
    /// Starts a writer (write and sync threads) named `name` over `db`, with a queue of
    /// `queue_len` operations.
    pub(crate) fn spawn(
        name: &str,
        db: Arc<DB>,
        queue_len: usize,
    ) -> Result<(Writer, Vec<JoinHandle<()>>), StorageError> {
        let (tx, rx) = mpsc::channel(queue_len);
        let stats = Arc::new(WriterStats::default());
        let shared = Arc::new(SyncShared { queue: Mutex::new(SyncQueue::default()), ready: Condvar::new() });
        let (wstats, wshared, wdb) = (stats.clone(), shared.clone(), db.clone());
        let writer = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || write_loop(&wdb, rx, &wstats, &wshared))?;
        let sstats = stats.clone();
        let syncer = std::thread::Builder::new()
            .name(format!("{name}-sync"))
            .spawn(move || sync_loop(&db, &sstats, &shared))?;
        Ok((Writer { tx, stats }, vec![writer, syncer]))
    }

    /// Closes this writer's queue (the threads finish what is queued, then end) and returns its
    /// stand-in: a writer whose every submit fails with `Closed`.
    pub(crate) fn close(&mut self) {
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
    }

    /// Queues `op`; waits (asynchronously) while the queue is full, which is the backpressure.
    pub(crate) async fn submit(&self, op: WriteOp) -> Result<(), StorageError> {
        self.tx.send(op).await.map_err(|_| StorageError::Closed)
    }

    /// Writes `batch` and waits until it is done (and fsynced if `sync`).
    pub(crate) async fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.submit(WriteOp { batch, sync, done: Done::Notify(tx) }).await?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Writes state-machine data and waits until it is in RocksDB (readable), not for an fsync.
    /// Only for data the Raft log can rebuild: after a crash RocksDB keeps a prefix of the WAL
    /// (each batch whole), and openraft re-applies the rest from the applied id they carry.
    pub(crate) async fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write(batch, false).await
    }

    /// The threads' counters.
    pub(crate) fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

fn write_loop(db: &DB, mut rx: mpsc::Receiver<WriteOp>, stats: &WriterStats, shared: &SyncShared) {
    let mut wal = WriteOptions::default();
    wal.set_sync(false);
    let mut ops: Vec<WriteOp> = Vec::with_capacity(64);

    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        while ops.len() < DRAIN_OPS_MAX {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let t0 = Instant::now();
        let mut to_sync = Vec::new();
        let mut now_done = Vec::new();
        // After the first failure nothing later is written: a later write must never be
        // durable when an earlier one is not. The failure is sticky (see `SyncQueue`).
        let mut failure = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).failure.clone();
        for mut op in ops.drain(..) {
            if failure.is_none() {
                let batch = std::mem::take(&mut op.batch);
                stats.bytes.fetch_add(batch.size_in_bytes() as u64, Ordering::Relaxed);
                match db.write_opt(batch, &wal) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "rocksdb write failed; failing this and every later write");
                        failure = Some(e.to_string());
                    }
                }
            }
            stats.ops.fetch_add(1, Ordering::Relaxed);
            if op.sync { to_sync.push(op.done) } else { now_done.push(op.done) }
        }
        stats.write_micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        let result = failure.clone().map_or(Ok(()), Err);
        for d in now_done {
            d.complete(&result);
        }
        if !to_sync.is_empty() || failure.is_some() {
            let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.failure.is_none() {
                q.failure = failure;
            }
            q.waiting.extend(to_sync);
            shared.ready.notify_one();
        }
    }
    let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    q.closed = true;
    shared.ready.notify_one();
}

fn sync_loop(db: &DB, stats: &WriterStats, shared: &SyncShared) {
    loop {
        let (batch, failure) = {
            let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            while q.waiting.is_empty() && !q.closed {
                q = shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.waiting.is_empty() && q.closed {
                return;
            }
            (std::mem::take(&mut q.waiting), q.failure.clone())
        };
        // Every write behind these completions returned before they were queued, so this
        // fsync covers them all.
        let result = match failure {
            Some(f) => Err(f),
            None => {
                let t = Instant::now();
                let r = db.flush_wal(true).map_err(|e| e.to_string());
                let took = t.elapsed();
                let us = took.as_micros() as u64;
                stats.sync_latency.observe(took);
                stats.sync_micros_max.fetch_max(us, Ordering::Relaxed);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "wal fsync failed; failing every write from now on");
                    shared.queue.lock().unwrap_or_else(|p| p.into_inner()).failure = Some(e.clone());
                }
                r
            }
        };
        stats.synced_ops.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for d in batch {
            d.complete(&result);
        }
    }
}
