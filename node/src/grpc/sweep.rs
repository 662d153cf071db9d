//! The sweep: a handed-out message whose invisible time ran out moves on when it comes due — to
//! its group's `%RETRY%` topic, or to its `%DLQ%` topic after the last attempt — at the group's
//! next receive, or by this sweep on the broker group's leader when the group receives no more
//! (RocketMQ's broker revives such messages in the background too).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use raftmq_storage::broker::record::RecordView;
use tokio::sync::watch;

use super::context::Context;
use crate::broker::moves::MoveKind;
use crate::broker::moves::MovePolicy;
use crate::broker::moves::Moving;
use crate::broker::moves::attempts_before;

/// How often leaders look for messages whose invisible time ran out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Most messages moved per broker group per sweep.
const SWEEP_MAX: usize = 256;

impl Context {
    /// One sweep over the broker groups this node leads.
    async fn sweep(&self) {
        for b in self.brokers.all().filter(|b| b.group.is_leader()) {
            let broker = b.group.id();
            let policies: BTreeMap<String, MovePolicy> = self.ns.read_local(|s| {
                s.groups.values().map(|g| (g.name.clone(), MovePolicy::of(s, g, broker))).collect()
            });
            // A group without a retry queue has nothing to move before its last attempt; a retry
            // copy's earlier attempts are counted once its record is read.
            let expired =
                b.expired(|g, attempt| policies.get(g).is_some_and(|p| p.kind(attempt).is_some()), SWEEP_MAX);
            let mut moves: BTreeMap<(String, String, MoveKind), Vec<Moving>> = BTreeMap::new();
            for e in expired {
                let Some(policy) = policies.get(&e.group) else { continue };
                let message = match b.message_at(&e.topic, e.queue, e.offset).await {
                    Ok(Some(m)) => m,
                    // Retention removed it; the next receive acks it away.
                    Ok(None) => continue,
                    Err(err) => {
                        tracing::warn!(group = %broker, error = %err, "sweep cannot read a message");
                        continue;
                    }
                };
                let before = RecordView::parse(&message.record).map_or(0, |v| attempts_before(&v));
                let attempt = before + e.attempt;
                let Some(kind) = policy.kind(attempt) else { continue };
                moves.entry((e.group, e.topic, kind)).or_default().push(Moving {
                    queue: e.queue,
                    message,
                    epoch: e.epoch,
                    attempt,
                });
            }
            for ((group, topic, kind), items) in moves {
                let Some(to) = policies.get(&group).and_then(|p| p.to(kind)) else { continue };
                if let Err(e) = b.move_out(&group, &topic, kind, to, &items).await {
                    tracing::warn!(consumer_group = %group, %topic, error = %e, "sweep move failed; next round");
                }
            }
        }
    }
}

/// Sweeps until shutdown.
pub async fn run(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        ctx.sweep().await;
    }
}
