//! The node's one RocksDB and its writer threads.
//!
//! Every group hosted by the node keeps its data in this one database, keyed by group id (see
//! [`crate::keys`]), so one WAL — and so one fsync — serves them all.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use rocksdb::ColumnFamily;
use rocksdb::ColumnFamilyDescriptor;
use rocksdb::DB;
use rocksdb::Options;

use crate::error::Result;
use crate::error::StorageError;
use crate::writer::Writer;
use crate::writer::WriterStats;

/// Column family of Raft log entries: `group ++ index` → encoded entry.
pub const CF_LOG: &str = "log";
/// Column family of Raft metadata: `group ++ tag` → vote, last purged, committed.
pub const CF_RAFT: &str = "raft";
/// Column family of state-machine data: `group ++ key` → value.
pub const CF_SM: &str = "sm";

/// Tuning of the node's RocksDB.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Memtable size of the log column family, bytes.
    pub log_write_buffer_bytes: usize,
    /// Memtable size of the other column families, bytes.
    pub write_buffer_bytes: usize,
    /// Block cache shared by all column families, bytes.
    pub block_cache_bytes: usize,
    /// Queue length of the writer, operations.
    pub writer_queue_len: usize,
    /// Keep WAL writes in RocksDB's memory until `flush_wal`. Only for tests that prove nothing
    /// is acknowledged before it reaches the WAL file: a copy of the directory then shows exactly
    /// what was flushed.
    pub manual_wal_flush: bool,
    /// Memtable flushes and compactions bypass the page cache (`O_DIRECT`). Turn off on file
    /// systems without direct I/O, such as tmpfs.
    pub direct_io: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            log_write_buffer_bytes: 32 << 20,
            write_buffer_bytes: 16 << 20,
            block_cache_bytes: 64 << 20,
            writer_queue_len: 8192,
            manual_wal_flush: false,
            direct_io: true,
        }
    }
}

/// The node's storage: one RocksDB and one writer (group commit, fsync) that every write goes
/// through, log and state machine alike, so the WAL holds them in the order they were queued.
pub struct Store {
    db: Arc<DB>,
    /// Whether this open created the database (the directory held none).
    created: bool,
    dir: PathBuf,
    writer: Writer,
    /// The writer threads; they end when the last `Writer` handle (held here) is dropped.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Longest a dropped store waits for its writer threads to finish.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for Store {
    /// Closes the writer queues and waits for the threads, so the database closes here and not in
    /// a thread still running when the process exits (RocksDB aborts with "pthread lock: Invalid
    /// argument" when its statics are torn down under a live database).
    fn drop(&mut self) {
        self.writer.close();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let until = std::time::Instant::now() + CLOSE_WAIT;
        for t in threads {
            while !t.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!("storage writer thread still running at close; not waiting longer");
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store under `dir`. Blocking: call it before serving, or from
    /// `spawn_blocking`.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Arc<Store>> {
        std::fs::create_dir_all(dir)?;
        crate::format::check_or_record(dir)?;
        let created = !dir.join("rocksdb").join("CURRENT").exists();
        let cache = rocksdb::Cache::new_lru_cache(opts.block_cache_bytes);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        db_opts.set_keep_log_file_num(4);
        db_opts.set_manual_wal_flush(opts.manual_wal_flush);
        // The WAL is where every message is first written (and fsynced). Fresh WAL files cost
        // twice: each fsync also journals the file's growth, and each write lands in page-cache
        // pages never used before (on a VM, every such page faults on the host; the copy into
        // them took ~20 % of all CPU under load). Recycled files are overwritten in place, in
        // pages already cached, like RocketMQ's preallocated CommitLog files. Recovery stays
        // point-in-time: records left over from the file's previous life carry an old log number
        // and end the replay.
        db_opts.set_recycle_log_file_num(4);
        // Recycling rules out writes that skip the WAL, so state-machine data goes through it
        // too (unsynced; see `Writer::write_unsynced`). Keep few WAL files alive: column families
        // that change rarely (Raft metadata) would otherwise pin every WAL until RocksDB's
        // default cap (4x all memtables, ~600 MiB), so the files would be new, not recycled.
        db_opts.set_max_total_wal_size(4 * opts.log_write_buffer_bytes as u64);
        // Memtable flushes write every message a second time (after the WAL); with buffered I/O
        // the kernel's copy into the page cache took ~15 % of all CPU. Direct I/O skips it.
        db_opts.set_use_direct_io_for_flush_and_compaction(opts.direct_io);
        // Snappy/LZ4 on message bodies costs CPU we do not have on 2 cores; SSTs stay plain.
        db_opts.set_compression_type(rocksdb::DBCompressionType::None);

        let cf = |buffer: usize| {
            let mut o = Options::default();
            o.set_write_buffer_size(buffer);
            o.set_max_write_buffer_number(3);
            o.set_block_based_table_factory(&table);
            o.set_compression_type(rocksdb::DBCompressionType::None);
            o
        };
        // The log is the CommitLog: append-only, deleted from the head. In a plain LSM every
        // message would be rewritten by each compaction; in blob files it is written once more
        // after the WAL and never again, while compaction moves only the small keys. A blob file
        // goes away once retention deleted every entry in it.
        let mut log_cf = cf(opts.log_write_buffer_bytes);
        log_cf.set_enable_blob_files(true);
        log_cf.set_min_blob_size(512);
        log_cf.set_blob_file_size(64 << 20);
        log_cf.set_enable_blob_gc(false);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_LOG, log_cf),
            ColumnFamilyDescriptor::new(CF_RAFT, cf(4 << 20)),
            ColumnFamilyDescriptor::new(CF_SM, cf(opts.write_buffer_bytes)),
        ];
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir.join("rocksdb"), cfs)?);
        let (writer, threads) = Writer::spawn("raftmq-log", db.clone(), opts.writer_queue_len)?;
        Ok(Arc::new(Store { db, created, dir: dir.to_path_buf(), writer, threads: Mutex::new(threads) }))
    }

    /// Whether this open created the database: a new node, or one whose data was lost.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The database.
    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Directory for the snapshot files of `group`.
    pub fn snapshot_dir(&self, group: crate::types::GroupId) -> PathBuf {
        self.dir.join("snapshots").join(group.name())
    }

    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Group-commit counters of the writer (fsyncs and the callbacks they served).
    pub fn writer_stats(&self) -> &Arc<WriterStats> {
        self.writer.stats()
    }

    /// A RocksDB integer property summed over the column families (`rocksdb.cur-size-all-mem-tables`,
    /// `rocksdb.estimate-live-data-size`, ...), for metrics. Takes RocksDB's internal locks
    /// briefly: call it off the async workers.
    pub fn property(&self, name: &str) -> Option<u64> {
        let mut total = None;
        for cf in [CF_LOG, CF_RAFT, CF_SM] {
            let cf = self.db.cf_handle(cf)?;
            if let Ok(Some(v)) = self.db.property_int_value_cf(&cf, name) {
                total = Some(total.unwrap_or(0) + v);
            }
        }
        total
    }

    /// A column family handle. The three families are created at open, so a miss is a bug.
    pub(crate) fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.db.cf_handle(name).ok_or(StorageError::Corruption {
            what: "column family",
            reason: format!("missing column family {name}"),
        })
    }
}
