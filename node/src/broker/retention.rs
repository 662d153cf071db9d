//! Retention of broker groups. The leader of each group proposes `Retain` with every topic's cut
//! time (its clock, its topics' retention); apply removes what is older on every replica. Then
//! each node snapshots and purges its own log up to the new floor, once it moved far enough.

use std::collections::HashMap;
use std::time::Duration;

use raftmq_storage::Command;
use raftmq_storage::GroupId;
use raftmq_storage::Retain;
use tokio::sync::watch;

use super::Brokers;
use crate::clock::now_ms;
use crate::nameserver::NameServer;

/// Longest wait for a snapshot before a purge.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs retention every `every` until shutdown.
pub async fn run(
    ns: NameServer,
    brokers: Brokers,
    every: Duration,
    compact_min_entries: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut compacted: HashMap<GroupId, u64> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        for b in brokers.all() {
            let id = b.group.id();
            if b.group.is_leader() {
                let now = now_ms();
                let cuts: Vec<(String, i64)> = ns.read_local(|s| {
                    s.topics
                        .values()
                        .filter(|t| t.queues.iter().any(|q| q.group == id.0))
                        .map(|t| {
                            (
                                t.name.clone(),
                                now.saturating_sub((t.retention_secs as i64).saturating_mul(1000)),
                            )
                        })
                        .collect()
                });
                if !cuts.is_empty()
                    && let Err(e) = b.group.write(Command::Retain(Retain { cuts })).await
                {
                    tracing::warn!(group = %id, error = %e, "retention proposal failed");
                }
            }
            let floor = b.data.floor();
            let done = compacted.get(&id).copied().unwrap_or(0);
            if floor > 0 && floor.saturating_sub(1) >= done + compact_min_entries.max(1) {
                let upto = floor - 1;
                match b.group.compact(upto, SNAPSHOT_TIMEOUT).await {
                    Ok(()) => {
                        tracing::info!(group = %id, upto, "purged the log up to the retention floor");
                        compacted.insert(id, upto);
                    }
                    Err(e) => tracing::warn!(group = %id, error = %e, "cannot purge the log yet"),
                }
            }
        }
    }
}
