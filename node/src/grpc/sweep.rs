//! The dead-letter sweep: a message that used up its delivery attempts moves to its group's
//! `%DLQ%` topic when it comes due — at the group's next receive, or by this sweep on the broker
//! group's leader when the group receives no more (RocketMQ's broker revives such messages in the
//! background too).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::context::Context;
use crate::broker::dead_letter::Dying;

/// How often leaders look for messages out of attempts.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Most messages moved per broker group per sweep.
const SWEEP_MAX: usize = 256;

impl Context {
    /// One sweep over the broker groups this node leads.
    async fn sweep_dead_letters(&self) {
        for b in self.brokers.all().filter(|b| b.group.is_leader()) {
            let attempts = |g: &str| self.ns.read_local(|s| s.groups.get(g).map(|g| g.max_delivery_attempts));
            let expired = b.expired(attempts, SWEEP_MAX);
            let mut by_group: BTreeMap<(String, String), Vec<Dying>> = BTreeMap::new();
            for e in expired {
                match b.message_at(&e.topic, e.queue, e.offset).await {
                    Ok(Some(message)) => by_group.entry((e.group, e.topic)).or_default().push(Dying {
                        queue: e.queue,
                        message,
                        epoch: e.epoch,
                        attempt: e.attempt,
                    }),
                    // Retention removed it; the next receive acks it away.
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(group = %b.group.id(), error = %err, "dead-letter sweep cannot read a message")
                    }
                }
            }
            for ((group, topic), dying) in by_group {
                let Some(dlq) = self.dead_letter_queue(&group, b.group.id()) else { continue };
                if let Err(e) = b.dead_letter(&group, &topic, &dlq, &dying).await {
                    tracing::warn!(consumer_group = %group, %topic, error = %e, "dead-letter sweep failed; next round");
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
        ctx.sweep_dead_letters().await;
    }
}
