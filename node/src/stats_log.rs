//! A periodic one-line summary of the storage writers and the write path, for operators and
//! for finding where time goes. Prometheus metrics replace it as the authoritative source.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftmq_storage::Store;
use tokio::sync::watch;

use crate::broker::Brokers;

/// Logs every `every` at debug level (`RUST_LOG=raftmq_node::stats_log=debug`).
pub async fn run(
    store: Arc<Store>,
    brokers: Brokers,
    service: Arc<crate::grpc::context::ServiceStats>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_sends = (0u64, 0u64);
    let mut last = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_appends = (0u64, 0u64, 0u64);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if !tracing::enabled!(tracing::Level::DEBUG) {
            continue;
        }
        let l = store.writer_stats();
        fn now_proposals(brokers: &Brokers) -> u64 {
            brokers.all().map(|b| b.batcher.stats().proposals.load(Ordering::Relaxed)).sum()
        }
        let (proposals, messages): (u64, u64) = brokers.all().fold((0, 0), |(p, m), b| {
            let s = b.batcher.stats();
            (p + s.proposals.load(Ordering::Relaxed), m + s.messages.load(Ordering::Relaxed))
        });
        let now = (
            l.sync_latency.count(),
            l.synced_ops.load(Ordering::Relaxed),
            l.sync_latency.sum_micros(),
            l.ops.load(Ordering::Relaxed),
            l.write_micros.load(Ordering::Relaxed),
            proposals,
            messages,
        );
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let appends = brokers.all().fold((0, 0, 0), |(n, us, p), b| {
            let s = b.batcher.stats();
            (
                n + s.appends.load(Ordering::Relaxed),
                us + s.append_micros.load(Ordering::Relaxed),
                p + s.proposal_micros.load(Ordering::Relaxed),
            )
        });
        let n_appends = d(appends.0, last_appends.0).max(1);
        let append_us_avg = d(appends.1, last_appends.1) / n_appends;
        let proposal_us_avg = d(appends.2, last_appends.2) / d(now_proposals(&brokers), last.5).max(1);
        last_appends = appends;
        let syncs = d(now.0, last.0).max(1);
        tracing::debug!(
            syncs = d(now.0, last.0),
            ops_per_sync = d(now.1, last.1) / syncs,
            sync_us_avg = d(now.2, last.2) / syncs,
            sync_us_max = l.sync_micros_max.swap(0, Ordering::Relaxed),
            writes = d(now.3, last.3),
            write_us_avg = d(now.4, last.4) / d(now.3, last.3).max(1),
            proposals = d(now.5, last.5),
            msgs_per_proposal = d(now.6, last.6) / d(now.5, last.5).max(1),
            append_us_avg,
            proposal_us_avg,
            send_handler_us_avg = {
                let now = (service.send_latency.count(), service.send_latency.sum_micros());
                let avg = d(now.1, last_sends.1) / d(now.0, last_sends.0).max(1);
                last_sends = now;
                avg
            },
            "storage"
        );
        last = now;
        if tracing::enabled!(tracing::Level::TRACE) {
            for b in brokers.all() {
                if b.group.is_leader()
                    && let Some(st) = b.group.runtime_stats().await
                {
                    tracing::trace!(group = %b.group.id(), "raft runtime stats\n{st}");
                }
            }
        }
    }
}
