//! Tests of the two rules between the log and RocksDB (module doc of [`super`]). Each fails if
//! the guard it is about is removed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use std::time::Instant;

use openraft::EntryPayload;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::type_config::TypeConfigExt;
use tempfile::TempDir;

use super::*;
use crate::nameserver::NameServerSm;
use crate::seglog::SyncHook;
use crate::snapshot;
use crate::store::StoreOptions;
use crate::types::CommittedLeaderId;

const G: GroupId = GroupId(0);

fn blank(index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId { term: 1, node_id: 1 }, index),
        payload: EntryPayload::Blank,
    }
}

async fn apply(sm: &mut NameServerSm, range: std::ops::RangeInclusive<u64>) {
    let items: Vec<io::Result<_>> = range.map(|i| Ok((blank(i), None))).collect();
    sm.apply(futures::stream::iter(items)).await.unwrap();
}

fn applied(store: &Store) -> Option<u64> {
    snapshot::applied_index(store, G).unwrap()
}

/// Rule 1: with the log's fsync held back, apply must not write what it applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_waits_for_durable_log() {
    let dir = TempDir::new().unwrap();
    let held = Arc::new(AtomicBool::new(false));
    let h = held.clone();
    let hook = SyncHook(Arc::new(move || {
        while h.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }));
    let opts = StoreOptions { log_sync_hook: Some(hook), ..Default::default() };
    let store = Store::open(dir.path(), &opts).unwrap();
    let mut log = LogStore::open(store.clone(), G, LogStoreOptions::default()).unwrap();
    let mut sm = NameServerSm::open(store.clone(), G, log.clone()).unwrap();

    held.store(true, Ordering::SeqCst);
    let (tx, rx) = TypeConfig::oneshot();
    log.append(vec![blank(1), blank(2)], IOFlushed::signal(tx)).await.unwrap();
    let apply_task = tokio::spawn(async move {
        apply(&mut sm, 1..=2).await;
        sm
    });
    // Readable but not durable: for a while, nothing applied may be in RocksDB.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        assert_eq!(applied(&store), None, "applied state written before its entries were durable");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), rx).await.unwrap().unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), apply_task).await.unwrap().unwrap();
    assert_eq!(applied(&store), Some(2));
}

/// Rule 2: a purge never lets go of entries RocksDB has not durably applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_never_outruns_durable_apply() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut log = LogStore::open(store.clone(), G, LogStoreOptions::default()).unwrap();
    let mut sm = NameServerSm::open(store.clone(), G, log.clone()).unwrap();
    let (tx, rx) = TypeConfig::oneshot();
    log.append((1..=20).map(blank).collect::<Vec<_>>(), IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
    apply(&mut sm, 1..=5).await;

    log.purge(blank(15).log_id).await.unwrap();
    assert_eq!(store.seglog().group(G).first, 6, "purged past what is applied");
    assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id.map(|l| l.index), Some(15));
    apply(&mut sm, 6..=20).await;
    log.purge(blank(15).log_id).await.unwrap();
    assert_eq!(store.seglog().group(G).first, 16);
}
