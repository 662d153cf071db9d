//! Moving messages to a consumer group's dead-letter topic on the leader of a broker group:
//! when a receive finds a due message that used up its delivery attempts, and on
//! `ForwardMessageToDeadLetterQueue`.

use raftmq_storage::Command;
use raftmq_storage::Response;
use raftmq_storage::broker::dead_letter::DeadLetterCmd;
use raftmq_storage::broker::pop::AckCmd;
use raftmq_storage::broker::pop::AckOp;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::BatchBuilder;
use raftmq_storage::broker::record::NewMessage;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::broker::record::StoredType;
use raftmq_storage::command::AppendBatch;

use super::BrokerGroup;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// Property: the topic a dead letter came from (as RocketMQ names it).
pub const ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
/// Property: the message id of the original (the copy keeps it too).
pub const ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
/// Property: how many times delivery was retried before the message died.
pub const RECONSUME_TIMES: &str = "RECONSUME_TIME";

/// Where a consumer group's dead letters of this broker group go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterQueue {
    /// `%DLQ%<group>`.
    pub topic: String,
    /// Its queue on this broker group.
    pub queue: u32,
}

/// One in-flight message to move.
#[derive(Debug, Clone)]
pub struct Dying {
    /// Queue of the original.
    pub queue: u32,
    /// The message as stored.
    pub message: StoredMessage,
    /// The epoch of its delivery (the move is refused if it was delivered again since).
    pub epoch: u32,
    /// Deliveries so far.
    pub attempt: u32,
}

impl BrokerGroup {
    /// Moves `dying` messages of `(group, topic)` to `dlq` in one Raft entry: out of flight and
    /// into the dead-letter queue together. Returns false if one of them was acked or delivered
    /// again meanwhile (then nothing moved). This node must lead the group.
    pub async fn dead_letter(
        &self,
        group: &str,
        topic: &str,
        dlq: &DeadLetterQueue,
        dying: &[Dying],
    ) -> Result<bool, BrokerError> {
        let mut batch = BatchBuilder::new();
        let mut items = Vec::with_capacity(dying.len());
        for d in dying {
            let v = RecordView::parse(&d.message.record).map_err(|e| BrokerError::Internal(e.to_string()))?;
            batch.push(&copy(&v, dlq, d.attempt));
            items.push((d.queue, d.message.offset, d.epoch));
        }
        let now = now_ms();
        let cmd = DeadLetterCmd {
            ack: AckCmd {
                group: group.to_string(),
                topic: topic.to_string(),
                now_ms: now,
                op: AckOp::Ack,
                items,
            },
            append: AppendBatch { store_ms: now, store_host: self.store_host.clone(), batch: batch.finish() },
        };
        match self.group.write(Command::DeadLetter(cmd)).await? {
            Response::Appended(offsets) => {
                tracing::info!(
                    broker = %self.group.id(), consumer_group = %group, %topic, count = offsets.len(),
                    dlq = %dlq.topic, "moved messages out of delivery attempts to the dead-letter queue"
                );
                self.pop_changed.notify_waiters();
                Ok(true)
            }
            Response::Rejected(reason) => {
                tracing::debug!(consumer_group = %group, %topic, reason = %reason, "dead-letter move was stale");
                Ok(false)
            }
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }
}

/// The dead-letter copy of a stored message: same id, body, tag, keys and properties, plus where
/// it came from and how often it was retried. Deliverable at once.
fn copy(v: &RecordView<'_>, dlq: &DeadLetterQueue, attempt: u32) -> NewMessage {
    let mut m = v.to_new();
    m.properties.retain(|(k, _)| ![ORIGIN_TOPIC, ORIGIN_MESSAGE_ID, RECONSUME_TIMES].contains(&k.as_str()));
    m.properties.push((ORIGIN_TOPIC.to_string(), v.topic.to_string()));
    m.properties.push((ORIGIN_MESSAGE_ID.to_string(), v.message_id.to_string()));
    m.properties.push((RECONSUME_TIMES.to_string(), attempt.saturating_sub(1).to_string()));
    m.topic = dlq.topic.clone();
    m.queue_id = dlq.queue;
    if m.message_type == StoredType::Delay {
        m.message_type = StoredType::Normal;
    }
    m.delivery_ms = None;
    m
}

/// A message in flight past its deadline after its group's last attempt, found by a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue: u32,
    /// Offset.
    pub offset: u64,
    /// Epoch of its last delivery.
    pub epoch: u32,
    /// Deliveries it had.
    pub attempt: u32,
}

impl BrokerGroup {
    /// In-flight messages whose invisible time is over and that had at least `max_attempts(group)`
    /// deliveries (at most `limit`): the ones a sweep moves to the dead-letter topic even when
    /// the group receives no more.
    pub fn expired(&self, max_attempts: impl Fn(&str) -> Option<u32>, limit: usize) -> Vec<Expired> {
        let now = now_ms();
        self.data.read(|s| {
            let mut out = Vec::new();
            for ((group, tid, queue), p) in &s.pops.queues {
                let Some(max) = max_attempts(group) else { continue };
                let Some(topic) = s.topic_name(*tid) else { continue };
                for (offset, f) in &p.inflight {
                    if f.deadline_ms <= now && f.attempt >= max {
                        out.push(Expired {
                            group: group.clone(),
                            topic: topic.to_string(),
                            queue: *queue,
                            offset: *offset,
                            epoch: f.epoch,
                            attempt: f.attempt,
                        });
                        if out.len() >= limit {
                            return out;
                        }
                    }
                }
            }
            out
        })
    }
}
