//! The node-wide RocksDB writer threads: every write of every group goes through one of them.
//!
//! **Why a thread.** RocksDB calls block, and an fsync blocks for milliseconds; on 2 cores a tokio
//! worker stuck in either stalls heartbeats of every group. So async code only builds a
//! [`WriteBatch`] and hands it over a bounded channel; a dedicated OS thread writes it.
//!
//! **Group commit.** The log writer drains everything queued, writes each batch (WAL, no sync),
//! then runs one `flush_wal(true)` for all of them and only then completes their callbacks. One
//! fsync serves every group on the node, because they share one RocksDB and so one WAL.
//!
//! **Ordering.** One queue, drained in order: a vote saved after an append is never durable before
//! that append, and a truncation is never overtaken by the append that follows it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use rocksdb::DB;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::error::StorageError;
use crate::types::TypeConfig;

/// Most operations one writer turn takes from the queue before it writes and syncs.
const DRAIN_OPS_MAX: usize = 4096;

/// What to do once a write is done.
pub(crate) enum Done {
    /// Tell openraft the appended entries are on disk.
    Flushed {
        callback: openraft::storage::IOFlushed<TypeConfig>,
        /// Runs once the batch is in RocksDB (readable there), before the fsync.
        on_written: Option<Box<dyn FnOnce() + Send>>,
    },
    /// Wake an async caller.
    Notify(oneshot::Sender<Result<(), StorageError>>),
    /// Nobody waits; failures are logged.
    Detached,
}

/// One unit of work for a writer thread.
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
    /// WAL fsyncs performed.
    pub syncs: AtomicU64,
    /// Operations that waited for an fsync (the callbacks the fsyncs served).
    pub synced_ops: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
}

/// Handle to a writer thread. Cloning shares the thread.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<WriteOp>,
    stats: Arc<WriterStats>,
}

impl Writer {
    /// Starts a writer thread named `name` over `db`, with a queue of `queue_len` operations.
    pub(crate) fn spawn(
        name: &str,
        db: Arc<DB>,
        queue_len: usize,
    ) -> Result<(Writer, JoinHandle<()>), StorageError> {
        let (tx, rx) = mpsc::channel(queue_len);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let handle =
            std::thread::Builder::new().name(name.to_string()).spawn(move || run(db, rx, &thread_stats))?;
        Ok((Writer { tx, stats }, handle))
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

    /// The thread's counters.
    pub(crate) fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

fn run(db: Arc<DB>, mut rx: mpsc::Receiver<WriteOp>, stats: &WriterStats) {
    let mut no_sync = WriteOptions::default();
    no_sync.set_sync(false);
    let mut ops: Vec<WriteOp> = Vec::with_capacity(64);

    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        while ops.len() < DRAIN_OPS_MAX {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }

        // Write every batch in queue order. After the first failure nothing later is written:
        // a later write must never be durable when an earlier one is not.
        let mut failure: Option<String> = None;
        let mut need_sync = false;
        for op in ops.iter_mut() {
            if failure.is_some() {
                continue;
            }
            let batch = std::mem::take(&mut op.batch);
            stats.bytes.fetch_add(batch.size_in_bytes() as u64, Ordering::Relaxed);
            match db.write_opt(batch, &no_sync) {
                Ok(()) => {
                    need_sync |= op.sync;
                    if let Done::Flushed { on_written, .. } = &mut op.done
                        && let Some(f) = on_written.take()
                    {
                        f();
                    }
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        if failure.is_none() && need_sync {
            if let Err(e) = db.flush_wal(true) {
                failure = Some(e.to_string());
            }
            stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        stats.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
        if let Some(reason) = &failure {
            tracing::error!(error = %reason, ops = ops.len(), "rocksdb write failed; failing every queued write");
        }

        for op in ops.drain(..) {
            if op.sync {
                stats.synced_ops.fetch_add(1, Ordering::Relaxed);
            }
            let result = match &failure {
                None => Ok(()),
                Some(reason) => Err(reason.clone()),
            };
            match op.done {
                Done::Flushed { callback, .. } => {
                    callback.io_completed(result.map_err(std::io::Error::other));
                }
                Done::Notify(tx) => {
                    let _ = tx.send(result.map_err(|r| StorageError::Io(std::io::Error::other(r))));
                }
                Done::Detached => {}
            }
        }
    }
}
