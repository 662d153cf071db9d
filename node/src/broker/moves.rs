//! Moving handed-out messages out of flight on the leader of a broker group: after a failed
//! delivery (its invisible time ran out, or the consumer gave it back) to the consumer group's
//! retry topic, so the original queue's progress is not held back while it waits; after its last
//! attempt, or on `ForwardMessageToDeadLetterQueue`, to the group's dead-letter topic. Either is
//! one Raft entry (`MoveCmd`) that removes the message from flight and appends its copy.

use raftmq_storage::Command;
use raftmq_storage::GroupId;
use raftmq_storage::Response;
use raftmq_storage::broker::moves::MoveCmd;
use raftmq_storage::broker::pop::AckCmd;
use raftmq_storage::broker::pop::AckOp;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::BatchBuilder;
use raftmq_storage::broker::record::NewMessage;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::broker::record::StoredType;
use raftmq_storage::command::AppendBatch;
use raftmq_storage::nameserver::ConsumerGroup;
use raftmq_storage::nameserver::MetaState;
use raftmq_storage::nameserver::names;

use super::BrokerGroup;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// Property: the topic a dead letter came from (as RocketMQ names it).
pub const ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
/// Property: the message id of the original (the copy keeps it too).
pub const ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
/// Property: how many times delivery was retried before the copy was made.
pub const RECONSUME_TIMES: &str = "RECONSUME_TIME";
/// Property: the topic a message in a retry topic came from (as RocketMQ names it).
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";

/// Where moved messages of a consumer group go on this broker group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `%RETRY%<group>` or `%DLQ%<group>`.
    pub topic: String,
    /// Its queue on this broker group.
    pub queue: u32,
}

impl Destination {
    /// The queue of `topic` on broker group `broker`, if the topic exists and has one there.
    pub fn of(s: &MetaState, topic: String, broker: GroupId) -> Option<Destination> {
        let queue = s.topics.get(&topic)?.queues.iter().find(|q| GroupId(q.group) == broker)?.queue_id;
        Some(Destination { topic, queue })
    }
}

/// Why a message moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MoveKind {
    /// A delivery failed; the copy is delivered again from the retry topic.
    Retry,
    /// The deliveries are used up; the copy is a dead letter.
    DeadLetter,
}

/// Where a consumer group's due messages go on one broker group, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovePolicy {
    /// Deliveries a message gets; after them a due message is a dead letter.
    pub max_attempts: u32,
    /// The group's dead-letter queue here (`None`: no DLQ topic, messages are never dropped).
    pub dlq: Option<Destination>,
    /// The group's retry queue here (`None`: an orderly group, which retries in place, or one
    /// without a retry topic).
    pub retry: Option<Destination>,
}

impl MovePolicy {
    /// The policy of `group` on broker group `broker`, from the NameServer's metadata.
    pub fn of(s: &MetaState, group: &ConsumerGroup, broker: GroupId) -> MovePolicy {
        MovePolicy {
            max_attempts: group.max_delivery_attempts,
            dlq: Destination::of(s, names::dlq_topic(&group.name), broker),
            retry: if group.fifo {
                None
            } else {
                Destination::of(s, names::retry_topic(&group.name), broker)
            },
        }
    }

    /// Where a due message that had `attempt` deliveries moves (`None`: delivered again in place).
    pub fn kind(&self, attempt: u32) -> Option<MoveKind> {
        if self.dlq.is_some() && attempt >= self.max_attempts {
            Some(MoveKind::DeadLetter)
        } else if self.retry.is_some() {
            Some(MoveKind::Retry)
        } else {
            None
        }
    }

    /// The destination of `kind`.
    pub fn to(&self, kind: MoveKind) -> Option<&Destination> {
        match kind {
            MoveKind::DeadLetter => self.dlq.as_ref(),
            MoveKind::Retry => self.retry.as_ref(),
        }
    }
}

/// One in-flight message to move.
#[derive(Debug, Clone)]
pub struct Moving {
    /// Queue of the message in its source topic.
    pub queue: u32,
    /// The message as stored.
    pub message: StoredMessage,
    /// The epoch of its delivery (the move is refused if it was delivered again since).
    pub epoch: u32,
    /// Deliveries so far, counting those before any earlier retry copy.
    pub attempt: u32,
}

/// The topic a stored message belongs to for its consumers: a retry copy's original topic, or
/// the record's own.
pub fn origin_topic<'a>(v: &RecordView<'a>) -> &'a str {
    if names::is_retry_topic(v.topic)
        && let Some((_, t)) = v.properties.iter().find(|(k, _)| *k == RETRY_TOPIC)
    {
        return t;
    }
    v.topic
}

/// Deliveries a stored message had before this copy was made: the count a retry copy carries,
/// 0 for anything else (a user property of the same name on a normal message counts for nothing).
pub fn attempts_before(v: &RecordView<'_>) -> u32 {
    if !names::is_retry_topic(v.topic) {
        return 0;
    }
    v.properties.iter().find(|(k, _)| *k == RECONSUME_TIMES).and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

impl BrokerGroup {
    /// Moves `items` of `(group, topic)` to `to` in one Raft entry: out of flight and into the
    /// destination together. Returns false if one of them was acked or delivered again meanwhile
    /// (then nothing moved). This node must lead the group.
    pub async fn move_out(
        &self,
        group: &str,
        topic: &str,
        kind: MoveKind,
        to: &Destination,
        items: &[Moving],
    ) -> Result<bool, BrokerError> {
        let mut batch = BatchBuilder::new();
        let mut acks = Vec::with_capacity(items.len());
        for d in items {
            let v = RecordView::parse(&d.message.record).map_err(|e| BrokerError::Internal(e.to_string()))?;
            batch.push(&copy(&v, kind, to, d.attempt));
            acks.push((d.queue, d.message.offset, d.epoch));
        }
        let now = now_ms();
        let cmd = MoveCmd {
            ack: AckCmd {
                group: group.to_string(),
                topic: topic.to_string(),
                now_ms: now,
                op: AckOp::Ack,
                items: acks,
            },
            append: AppendBatch { store_ms: now, store_host: self.store_host.clone(), batch: batch.finish() },
        };
        match self.group.write(Command::Move(cmd)).await? {
            Response::Appended(offsets) => {
                match kind {
                    MoveKind::DeadLetter => tracing::info!(
                        broker = %self.group.id(), consumer_group = %group, %topic, count = offsets.len(),
                        dlq = %to.topic, "moved messages out of delivery attempts to the dead-letter queue"
                    ),
                    MoveKind::Retry => tracing::debug!(
                        broker = %self.group.id(), consumer_group = %group, %topic, count = offsets.len(),
                        "moved messages whose delivery failed to the retry topic"
                    ),
                }
                self.pop_changed.notify_waiters();
                Ok(true)
            }
            Response::Rejected(reason) => {
                tracing::debug!(consumer_group = %group, %topic, reason = %reason, "move out of flight was stale");
                Ok(false)
            }
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }
}

impl BrokerGroup {
    /// A consumer that read `message` by offset (a 4.x pull consumer) hands it back after its
    /// `attempt`-th delivery failed: a copy goes to the group's retry topic, deliverable at
    /// `retry_at` (ms since the epoch), or — after the group's last attempt — to its dead-letter
    /// topic; `kind` overrides the group's rule (a 4.x consumer may give its own number of
    /// attempts). Where it went, or `None` when `policy` has no such destination. This node must
    /// lead the group.
    pub async fn hand_back(
        &self,
        policy: &MovePolicy,
        message: &StoredMessage,
        attempt: u32,
        retry_at: i64,
        kind: Option<MoveKind>,
    ) -> Result<Option<MoveKind>, BrokerError> {
        let kind = kind.or_else(|| policy.kind(attempt));
        let Some((kind, to)) = kind.and_then(|k| policy.to(k).map(|to| (k, to))) else { return Ok(None) };
        let v = RecordView::parse(&message.record).map_err(|e| BrokerError::Internal(e.to_string()))?;
        let mut m = copy(&v, kind, to, attempt);
        if kind == MoveKind::Retry && retry_at > now_ms() {
            m.message_type = StoredType::Delay;
            m.delivery_ms = Some(retry_at);
        }
        self.batcher.append(vec![m]).await?;
        Ok(Some(kind))
    }
}

/// The copy of a stored message for `to`: same id, body, tag, keys and properties, plus where it
/// came from and how often it was delivered. Deliverable at once.
fn copy(v: &RecordView<'_>, kind: MoveKind, to: &Destination, attempt: u32) -> NewMessage {
    let origin = origin_topic(v).to_string();
    let mut m = v.to_new();
    m.properties.retain(|(k, _)| {
        ![ORIGIN_TOPIC, ORIGIN_MESSAGE_ID, RECONSUME_TIMES, RETRY_TOPIC].contains(&k.as_str())
    });
    match kind {
        MoveKind::Retry => {
            m.properties.push((RETRY_TOPIC.to_string(), origin));
            m.properties.push((RECONSUME_TIMES.to_string(), attempt.to_string()));
        }
        MoveKind::DeadLetter => {
            m.properties.push((ORIGIN_TOPIC.to_string(), origin));
            m.properties.push((ORIGIN_MESSAGE_ID.to_string(), v.message_id.to_string()));
            m.properties.push((RECONSUME_TIMES.to_string(), attempt.saturating_sub(1).to_string()));
        }
    }
    m.topic = to.topic.clone();
    m.queue_id = to.queue;
    if m.message_type == StoredType::Delay {
        m.message_type = StoredType::Normal;
    }
    m.delivery_ms = None;
    m
}

/// A message in flight past its deadline, found by a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Consumer group.
    pub group: String,
    /// Topic (the group's retry topic for a retry copy).
    pub topic: String,
    /// Queue.
    pub queue: u32,
    /// Offset.
    pub offset: u64,
    /// Epoch of its last delivery.
    pub epoch: u32,
    /// Deliveries of this copy.
    pub attempt: u32,
}

impl BrokerGroup {
    /// In-flight messages whose invisible time is over and that `sweeps(group, attempt)` accepts
    /// (at most `limit`): the ones a sweep moves on (to the retry or dead-letter topic) even when
    /// the group receives no more.
    pub fn expired(&self, sweeps: impl Fn(&str, u32) -> bool, limit: usize) -> Vec<Expired> {
        let now = now_ms();
        self.data.read(|s| {
            let mut out = Vec::new();
            let names = s.topic_names();
            for ((group, tid, queue), p) in &s.pops.queues {
                let Some(topic) = names.get(tid) else { continue };
                for (offset, f) in &p.inflight {
                    if f.deadline_ms <= now && sweeps(group, f.attempt) {
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
