//! Tests of the log store: openraft's storage suite, and the fsync-before-flushed rule.

use std::time::Duration;

use openraft::EntryPayload;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use openraft::type_config::TypeConfigExt;
use tempfile::TempDir;

use super::*;
use crate::nameserver::NameServerSm;
use crate::store::StoreOptions;
use crate::types::CommittedLeaderId;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, NameServerSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, NameServerSm), openraft::StorageError<TypeConfig>> {
        let dir = TempDir::new().expect("temp dir");
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("open store");
        let log = LogStore::open(store.clone(), GroupId(0), LogStoreOptions::default()).expect("open log");
        let sm = NameServerSm::open(store, GroupId(0), log.clone()).expect("open sm");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_openraft_storage_suite() {
    Suite::test_all(Builder).await.expect("openraft storage suite");
}

fn blank(term: u64, index: u64) -> Entry {
    Entry { log_id: LogId::new(CommittedLeaderId { term, node_id: 1 }, index), payload: EntryPayload::Blank }
}

/// The durability rule at this level: openraft hears "flushed" for appended entries, and
/// `save_vote` returns, only for what a reopened store reads back. (That the segment log's
/// completion comes after its fsync is `seglog::tests::completions_come_after_the_fsync`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_callback_waits_for_fsync() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut log = LogStore::open(store.clone(), GroupId(3), LogStoreOptions::default()).unwrap();
    let (tx, rx) = TypeConfig::oneshot();
    log.append(vec![blank(1, 1), blank(1, 2)], IOFlushed::signal(tx)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx).await.unwrap().unwrap().unwrap();
    assert!(store.writer_stats().sync_latency.count() >= 1, "flushed before any fsync");
    log.save_vote(&Vote::new(4, 1)).await.unwrap();
    drop(log);
    drop(store);

    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut reopened = LogStore::open(store, GroupId(3), LogStoreOptions::default()).unwrap();
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|l| l.index), Some(2), "flushed entries survive");
    assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new(4, 1)), "saved vote survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_survive_reopen_and_reads_span_cache_and_disk() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    // A tiny cache: most entries are read back from RocksDB.
    let opts = LogStoreOptions { tail_cache_bytes: 64, ..Default::default() };
    let mut log = LogStore::open(store.clone(), GroupId(1), opts.clone()).unwrap();
    for i in 1..=50 {
        let (tx, rx) = TypeConfig::oneshot();
        log.append(vec![blank(1, i)], IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
    }
    let got = log.try_get_log_entries(5..45).await.unwrap();
    assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (5..45).collect::<Vec<_>>());

    // Another group in the same DB is independent.
    let mut other = LogStore::open(store.clone(), GroupId(2), opts.clone()).unwrap();
    assert_eq!(other.get_log_state().await.unwrap().last_log_id, None);

    log.truncate_after(Some(blank(1, 40).log_id)).await.unwrap();
    log.purge(blank(1, 10).log_id).await.unwrap();
    drop(log);
    drop(other);
    let mut log = LogStore::open(store, GroupId(1), opts).unwrap();
    let st = log.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id.map(|l| l.index), Some(40));
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(10));
    let got = log.try_get_log_entries(11..41).await.unwrap();
    assert_eq!(got.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_requests_are_bounded_by_bytes() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let opts = LogStoreOptions { append_bytes_max: 100, tail_cache_bytes: 1 << 20, ..Default::default() };
    let mut log = LogStore::open(store, GroupId(1), opts).unwrap();
    let (tx, rx) = TypeConfig::oneshot();
    log.append((1..=20).map(|i| blank(1, i)).collect::<Vec<_>>(), IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
    // A blank entry encodes to 26 bytes: 100 bytes hold 3 of them.
    let got = log.limited_get_log_entries(1, 21).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(log.limited_get_log_entries(5, 6).await.unwrap().len(), 1);
}
