//! What a send must satisfy, whatever protocol it came in: the checks on a message, its type
//! against its topic's, the queue it goes to, and the append on a group this node leads.

use bytes::Bytes;
use md5::Digest;
use raftmq_client::trace;
use raftmq_storage::GroupId;
use raftmq_storage::broker::record::NewMessage;
use raftmq_storage::broker::record::StoredType;
use raftmq_storage::nameserver::MessageType;
use raftmq_storage::nameserver::Topic;
use tracing::Instrument;

use super::BrokerGroup;
use super::batcher::Appended;
use super::service::BrokerService;
use super::traffic::Direction;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::error::Reason;

/// Largest message body accepted (RocketMQ's default `maxMessageSize`).
pub const BODY_BYTES_MAX: usize = 4 << 20;
/// Largest total size of a message's user properties.
pub const PROPERTIES_BYTES_MAX: usize = 16 << 10;
/// Longest message group.
const MESSAGE_GROUP_MAX: usize = 1024;

/// How a stored body is encoded (`apache.rocketmq.v2.Encoding` numbers, plus zlib for the 4.x
/// clients' compressed bodies, which are kept as sent).
pub mod encoding {
    /// As sent, uncompressed.
    pub const IDENTITY: u8 = 1;
    /// gzip (RocketMQ 5 clients).
    pub const GZIP: u8 = 2;
    /// zlib (RocketMQ 4.x clients, `sysFlag` 0x1).
    pub const ZLIB: u8 = 3;
}

/// A message as a client asked to send it, before the broker's checks. Each front end builds one
/// from its wire; [`BrokerService::prepare`] checks it and makes what is stored.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// The client's message id.
    pub message_id: String,
    /// Body, as sent.
    pub body: Bytes,
    /// How the body is encoded ([`encoding`]).
    pub body_encoding: u8,
    /// Tag.
    pub tag: Option<String>,
    /// Keys.
    pub keys: Vec<String>,
    /// Message group (FIFO), if any.
    pub message_group: Option<String>,
    /// Part of a transaction (a half message).
    pub transaction: bool,
    /// When to deliver, ms since the epoch, if delayed.
    pub delivery_ms: Option<i64>,
    /// When the producer made it, ms since the epoch (now if unknown).
    pub born_ms: Option<i64>,
    /// The producer's host.
    pub born_host: String,
    /// W3C trace context.
    pub trace_context: Option<String>,
    /// User properties (and properties the broker keeps for a protocol, see `props`).
    pub properties: Vec<(String, String)>,
}

fn illegal(code: Reason, message: impl Into<String>) -> BrokerError {
    BrokerError::invalid(code, message)
}

/// FNV-1a of a message group: which queue a FIFO message goes to. Stable across versions.
pub fn group_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl BrokerService {
    /// Checks `d` for `topic` and builds what is stored (queue 0: [`pick_queue`](Self::pick_queue)
    /// sets it). With `check_type`, the message's kind must be one the topic's type accepts (the
    /// RocketMQ 5 clients declare it; the 4.x protocol has no topic types, as Apache's brokers do
    /// not check them there).
    pub fn prepare(&self, topic: &Topic, d: Draft, check_type: bool) -> Result<NewMessage, BrokerError> {
        if d.message_id.trim().is_empty() {
            return Err(illegal(
                Reason::IllegalMessageId,
                "message_id is blank: clients generate one per message",
            ));
        }
        if d.body.is_empty() {
            return Err(illegal(Reason::MessageBodyEmpty, "message body is empty"));
        }
        if d.body.len() > BODY_BYTES_MAX {
            return Err(illegal(
                Reason::MessageBodyTooLarge,
                format!("message body has {} bytes; the limit is {BODY_BYTES_MAX}", d.body.len()),
            ));
        }
        if let Some(tag) = &d.tag
            && (tag.trim().is_empty() || tag.contains('|'))
        {
            return Err(illegal(
                Reason::IllegalMessageTag,
                format!("tag {tag:?} must be non-blank and must not contain '|'"),
            ));
        }
        if d.keys.iter().any(|k| k.trim().is_empty()) {
            return Err(illegal(Reason::IllegalMessageKey, "message keys must be non-blank"));
        }
        let props: usize = d.properties.iter().map(|(k, v)| k.len() + v.len()).sum();
        if props > PROPERTIES_BYTES_MAX {
            return Err(illegal(
                Reason::MessagePropertiesTooLarge,
                format!("properties take {props} bytes; the limit is {PROPERTIES_BYTES_MAX}"),
            ));
        }
        let group = d.message_group.filter(|g| !g.is_empty());
        if group.as_ref().is_some_and(|g| g.trim().is_empty() || g.len() > MESSAGE_GROUP_MAX) {
            return Err(illegal(
                Reason::IllegalMessageGroup,
                format!("message group must be non-blank and at most {MESSAGE_GROUP_MAX} bytes"),
            ));
        }
        let stored_type = if d.delivery_ms.is_some() {
            StoredType::Delay
        } else if group.is_some() {
            StoredType::Fifo
        } else if d.transaction {
            StoredType::Transaction
        } else {
            StoredType::Normal
        };
        let accepted = matches!(
            (topic.message_type, stored_type),
            (MessageType::Mixed, _)
                | (MessageType::Normal, StoredType::Normal)
                | (MessageType::Fifo, StoredType::Fifo)
                | (MessageType::Delay, StoredType::Delay)
                | (MessageType::Transaction, StoredType::Transaction)
        );
        if check_type && !accepted {
            return Err(illegal(
                Reason::MessagePropertyConflictWithType,
                format!(
                    "topic {:?} takes {} messages, this one is {stored_type:?}",
                    topic.name,
                    topic.message_type.as_str()
                ),
            ));
        }
        if let Some(at) = d.delivery_ms {
            let ahead = at.saturating_sub(now_ms());
            let max = self.options.delay_max_ms;
            if at <= 0 || ahead > max {
                return Err(illegal(
                    Reason::IllegalDeliveryTime,
                    format!(
                        "delivery time {at} is {} s ahead; it must be after 1970 and at most {} s ahead",
                        ahead / 1000,
                        max / 1000
                    ),
                ));
            }
            if d.transaction {
                return Err(illegal(
                    Reason::MessagePropertyConflictWithType,
                    "a transactional message cannot also be delayed",
                ));
            }
        }
        Ok(NewMessage {
            topic: topic.name.clone(),
            queue_id: 0,
            message_id: d.message_id,
            message_type: stored_type,
            body_encoding: d.body_encoding,
            tag: d.tag,
            keys: d.keys,
            message_group: group,
            born_ms: d.born_ms.unwrap_or_else(now_ms),
            born_host: d.born_host,
            delivery_ms: d.delivery_ms,
            trace_context: d.trace_context,
            properties: d.properties,
            body_md5: md5::Md5::digest(&d.body).into(),
            body: d.body,
        })
    }

    /// The queue a message goes to: a FIFO message to the queue its message group hashes to; a
    /// message whose client (or a forwarding node) chose a queue to that queue; others
    /// round-robin over the queues of groups this node leads (`local`: no extra hop), or of any
    /// group when it leads none.
    pub fn pick_queue(&self, topic: &Topic, local: &[u32], nm: &NewMessage, chosen: Option<u32>) -> u32 {
        let n = topic.queue_count().max(1);
        if let Some(g) = &nm.message_group {
            return (group_hash(g) % u64::from(n)) as u32;
        }
        if let Some(q) = chosen.filter(|q| *q < n) {
            return q;
        }
        let rr = self.next_rr();
        if local.is_empty() { (rr as u32) % n } else { local[rr % local.len()] }
    }

    /// The queues of `topic` whose broker group this node leads: a send there needs no hop.
    pub fn local_queues(&self, topic: &Topic) -> Vec<u32> {
        topic
            .queues
            .iter()
            .filter(|q| self.local_leader(GroupId(q.group)).is_some())
            .map(|q| q.queue_id)
            .collect()
    }
}

impl BrokerGroup {
    /// Appends `msgs` to this group, which this node leads: propose, replicate to a quorum that
    /// fsyncs, apply. Where each landed, in order.
    pub async fn append_local(&self, msgs: Vec<NewMessage>) -> Result<Vec<Appended>, BrokerError> {
        let sizes: Vec<(u32, usize)> = msgs.iter().map(|m| (m.queue_id, m.body.len())).collect();
        let topic = msgs.first().map(|m| m.topic.clone()).unwrap_or_default();
        // Answered once the entry is committed (quorum fsync) and applied.
        let span = tracing::info_span!(target: trace::TARGET, "commitlog.append", group = %self.group.id(), messages = msgs.len());
        let appended = self.batcher.append(msgs).instrument(span).await;
        match &appended {
            Ok(_) => self.traffic.count(Direction::Put, &topic, sizes),
            Err(e) => tracing::debug!(group = %self.group.id(), error = %e, "append failed"),
        }
        appended
    }
}
