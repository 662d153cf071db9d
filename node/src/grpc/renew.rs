//! Keeping received messages invisible while their consumer works on them (`auto_renew`, what
//! push consumers ask for): the node a consumer received through renews each handed-out message
//! shortly before its invisible time ends, for as long as the consumer's session lives and the
//! message is neither acked nor redelivered. A renewal keeps the handle valid (same epoch).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use raftmq_storage::GroupId;
use tokio::sync::watch;
use tonic::metadata::MetadataMap;

use super::context::Context;
use super::receipt::ReceiptHandle;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// Invisible time of messages received with `auto_renew`, and of each renewal, ms.
pub const AUTO_RENEW_INVISIBLE_MS: i64 = 60_000;
/// A message is renewed when less than this is left of its invisible time, ms.
const RENEW_AHEAD_MS: i64 = 20_000;
/// How often due renewals are looked for.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A message a consumer holds.
#[derive(Debug, Clone)]
struct Held {
    client: String,
    group: String,
    topic: String,
    handle: ReceiptHandle,
}

/// (broker group, from the retry topic, queue, offset, consumer group).
type HeldKey = (GroupId, bool, u32, u64, String);

fn held_key(group: &str, h: &ReceiptHandle) -> HeldKey {
    (h.group, h.retry, h.queue, h.offset, group.to_string())
}

/// Messages this node renews, by [`HeldKey`].
#[derive(Default)]
pub struct Renewals {
    held: Mutex<HashMap<HeldKey, Held>>,
}

impl Renewals {
    /// Starts renewing a message `client` of `group` received.
    pub fn hold(&self, client: &str, group: &str, topic: &str, handle: ReceiptHandle) {
        let held =
            Held { client: client.to_string(), group: group.to_string(), topic: topic.to_string(), handle };
        self.lock().insert(held_key(group, &handle), held);
    }

    /// Stops renewing a message (acked, or its invisible time changed).
    pub fn release(&self, group: &str, handle: &ReceiptHandle) {
        self.lock().remove(&held_key(group, handle));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HeldKey, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn due(&self, before_ms: i64) -> Vec<Held> {
        self.lock().values().filter(|h| h.handle.deadline_ms <= before_ms).cloned().collect()
    }

    fn renewed(&self, held: &Held, deadline_ms: i64) {
        if let Some(h) = self.lock().get_mut(&held_key(&held.group, &held.handle))
            && h.handle.epoch == held.handle.epoch
        {
            h.handle.deadline_ms = deadline_ms;
        }
    }
}

/// Renews due messages until `stop`.
pub async fn run(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for held in ctx.renewals.due(now_ms() + RENEW_AHEAD_MS) {
            if !ctx.sessions.alive(&held.client) {
                tracing::debug!(client = %held.client, "consumer gone; its messages become visible when due");
                ctx.renewals.release(&held.group, &held.handle);
                continue;
            }
            let r = ctx
                .change_invisible_at(
                    &held.group,
                    &held.topic,
                    held.handle,
                    AUTO_RENEW_INVISIBLE_MS,
                    true,
                    &MetadataMap::new(),
                )
                .await;
            match r {
                Ok(h) => ctx.renewals.renewed(&held, h.deadline_ms),
                Err(BrokerError::BadRequest { .. }) => ctx.renewals.release(&held.group, &held.handle),
                Err(e) => {
                    tracing::warn!(group = %held.group, offset = held.handle.offset, error = %e, "renewal failed; retrying")
                }
            }
        }
    }
}
