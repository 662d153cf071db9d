//! The node's storage: the segment log that holds every group's Raft log ([`crate::seglog`],
//! `<data dir>/commitlog`) and one RocksDB for every group's state-machine data, keyed by group
//! id (see [`crate::keys`]), each with its writer threads.

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
use crate::seglog::SegLog;
use crate::seglog::SegLogOptions;
use crate::writer::Writer;
use crate::writer::WriterStats;

/// Column family of state-machine data: `group ++ key` → value.
pub const CF_SM: &str = "sm";

/// Tuning of the node's RocksDB.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Memtable size of the state-machine column family, bytes.
    pub write_buffer_bytes: usize,
    /// Block cache shared by all column families, bytes.
    pub block_cache_bytes: usize,
    /// Queue length of the writer, operations.
    pub writer_queue_len: usize,
    /// Memtable flushes and compactions bypass the page cache (`O_DIRECT`). Turn off on file
    /// systems without direct I/O, such as tmpfs.
    pub direct_io: bool,
    /// Size of one segment-log file, bytes.
    pub segment_bytes: u64,
    /// Tests only: runs before each fsync of the segment log (see `SegLogOptions::before_sync`).
    pub log_sync_hook: Option<crate::seglog::SyncHook>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            write_buffer_bytes: 16 << 20,
            block_cache_bytes: 64 << 20,
            writer_queue_len: 8192,
            direct_io: true,
            segment_bytes: SegLogOptions::default().segment_bytes,
            log_sync_hook: None,
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
    /// The Raft logs of every group.
    seglog: SegLog,
    /// The writer threads (RocksDB's and the segment log's); they end when their queues close.
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
        self.seglog.close();
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
        db_opts.set_max_total_wal_size(4 * opts.write_buffer_bytes as u64);
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
        let cfs = vec![ColumnFamilyDescriptor::new(CF_SM, cf(opts.write_buffer_bytes))];
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir.join("rocksdb"), cfs)?);
        let (writer, mut threads) = Writer::spawn("raftmq-sm", db.clone(), opts.writer_queue_len)?;
        let seg_opts = SegLogOptions {
            queue_len: opts.writer_queue_len,
            before_sync: opts.log_sync_hook.clone(),
            segment_bytes: opts.segment_bytes,
        };
        let (seglog, seg_thread) = SegLog::open(&dir.join("commitlog"), seg_opts)?;
        threads.push(seg_thread);
        Ok(Arc::new(Store {
            db,
            created,
            dir: dir.to_path_buf(),
            writer,
            seglog,
            threads: Mutex::new(threads),
        }))
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

    /// The Raft logs of every group.
    pub fn seglog(&self) -> &SegLog {
        &self.seglog
    }

    /// Group-commit counters of the log writer (fsyncs and the callbacks they served).
    pub fn writer_stats(&self) -> &Arc<WriterStats> {
        self.seglog.stats()
    }

    /// Counters of the state-machine writer (RocksDB WAL writes and fsyncs).
    pub fn sm_writer_stats(&self) -> &Arc<WriterStats> {
        self.writer.stats()
    }

    /// A RocksDB integer property of the state-machine data (`rocksdb.cur-size-all-mem-tables`,
    /// `rocksdb.estimate-live-data-size`, ...), for metrics. Takes RocksDB's internal locks
    /// briefly: call it off the async workers.
    pub fn property(&self, name: &str) -> Option<u64> {
        let cf = self.db.cf_handle(CF_SM)?;
        self.db.property_int_value_cf(&cf, name).ok().flatten()
    }

    /// A column family handle. The families are created at open, so a miss is a bug.
    pub(crate) fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.db.cf_handle(name).ok_or(StorageError::Corruption {
            what: "column family",
            reason: format!("missing column family {name}"),
        })
    }
}
