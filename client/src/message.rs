//! Messages as the SDK user sees them: [`Message`] to send, [`MessageView`] received.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use raftmq_proto::rocketmq as pb;

/// A message to send. Build with [`Message::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// Body.
    pub body: Bytes,
    /// Tag (filterable by consumers).
    pub tag: Option<String>,
    /// Keys (queryable).
    pub keys: Vec<String>,
    /// Message group: messages of one group go to one queue, in order (FIFO topics).
    pub message_group: Option<String>,
    /// User properties.
    pub properties: HashMap<String, String>,
    /// Deliver no earlier than this, ms since the epoch (delay and scheduled messages).
    pub delivery_ms: Option<i64>,
    /// A half message of a transaction (set by [`crate::Producer::send_half`]).
    pub(crate) half: bool,
}

/// RocketMQ's 18 delay levels: level `n` (1-based) waits `DELAY_LEVELS[n - 1]` seconds
/// (1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h).
pub const DELAY_LEVELS: [u64; 18] =
    [1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200];

impl Message {
    /// A message for `topic` with `body`.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            body: body.into(),
            tag: None,
            keys: Vec::new(),
            message_group: None,
            properties: HashMap::new(),
            delivery_ms: None,
            half: false,
        }
    }

    /// Delivers the message at `ms` since the epoch (a scheduled message). The broker refuses
    /// times further ahead than its limit (3 days by default) with ILLEGAL_DELIVERY_TIME.
    pub fn with_delivery_time(mut self, ms: i64) -> Self {
        self.delivery_ms = Some(ms);
        self
    }

    /// Delivers the message `delay` from now.
    pub fn with_delay(self, delay: std::time::Duration) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.with_delivery_time((now + delay).as_millis() as i64)
    }

    /// Delivers the message after RocketMQ delay level `level` (1-18, see [`DELAY_LEVELS`]);
    /// `None` for a level outside 1-18.
    pub fn with_delay_level(self, level: usize) -> Option<Self> {
        let secs = *DELAY_LEVELS.get(level.checked_sub(1)?)?;
        Some(self.with_delay(std::time::Duration::from_secs(secs)))
    }

    /// Sets the tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Adds a key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Sets the message group (FIFO).
    pub fn with_message_group(mut self, group: impl Into<String>) -> Self {
        self.message_group = Some(group.into());
        self
    }

    /// Adds a user property.
    pub fn with_property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.properties.insert(k.into(), v.into());
        self
    }

    pub(crate) fn to_wire(&self, message_id: String, born_host: &str) -> pb::Message {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let message_type = match (&self.message_group, self.delivery_ms) {
            _ if self.half => pb::MessageType::Transaction,
            (_, Some(_)) => pb::MessageType::Delay,
            (Some(_), None) => pb::MessageType::Fifo,
            (None, None) => pb::MessageType::Normal,
        };
        pb::Message {
            topic: Some(pb::Resource { resource_namespace: String::new(), name: self.topic.clone() }),
            user_properties: self.properties.clone(),
            system_properties: Some(pb::SystemProperties {
                tag: self.tag.clone(),
                keys: self.keys.clone(),
                message_id,
                body_encoding: pb::Encoding::Identity as i32,
                message_type: message_type as i32,
                born_timestamp: Some(prost_types::Timestamp {
                    seconds: now.as_secs() as i64,
                    nanos: now.subsec_nanos() as i32,
                }),
                born_host: born_host.to_string(),
                message_group: self.message_group.clone(),
                delivery_timestamp: self.delivery_ms.map(|ms| prost_types::Timestamp {
                    seconds: ms.div_euclid(1000),
                    nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
                }),
                ..Default::default()
            }),
            body: self.body.clone(),
        }
    }
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    /// Topic.
    pub topic: String,
    /// The producer's message id.
    pub message_id: String,
    /// Queue it was stored in.
    pub queue_id: u32,
    /// Its offset in that queue.
    pub offset: u64,
    /// Tag.
    pub tag: Option<String>,
    /// Keys.
    pub keys: Vec<String>,
    /// Message group.
    pub message_group: Option<String>,
    /// User properties.
    pub properties: HashMap<String, String>,
    /// When the producer created it, ms since the epoch.
    pub born_ms: i64,
    /// When the broker stored it, ms since the epoch.
    pub store_ms: i64,
    /// Delivery attempt, from 1.
    pub delivery_attempt: u32,
    /// Body.
    pub body: Bytes,
    /// The producer's W3C trace context, if it sent one: continue the trace in your processing
    /// with [`crate::trace::set_parent`].
    pub trace_context: Option<String>,
}

fn ms(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

impl MessageView {
    /// Each delivered message that carries a trace context records a `deliver` span (target
    /// [`crate::trace::TARGET`]) in the producer's trace.
    pub(crate) fn from_wire(m: pb::Message) -> Option<Self> {
        let sys = m.system_properties?;
        if let Some(tp) = &sys.trace_context {
            let span = tracing::info_span!(
                target: crate::trace::TARGET,
                "deliver",
                otel.kind = "consumer",
                messaging.message.id = %sys.message_id,
                messaging.destination.queue = sys.queue_id,
                messaging.offset = sys.queue_offset.unwrap_or(0),
            );
            crate::trace::set_parent(&span, tp);
        }
        Some(Self {
            topic: m.topic.map(|t| t.name).unwrap_or_default(),
            message_id: sys.message_id,
            queue_id: sys.queue_id.max(0) as u32,
            offset: sys.queue_offset.unwrap_or(0).max(0) as u64,
            tag: sys.tag,
            keys: sys.keys,
            message_group: sys.message_group,
            properties: m.user_properties,
            born_ms: ms(sys.born_timestamp.as_ref()),
            store_ms: ms(sys.store_timestamp.as_ref()),
            delivery_attempt: sys.delivery_attempt.unwrap_or(1).max(1) as u32,
            trace_context: sys.trace_context,
            body: m.body,
        })
    }
}

/// A new message id in RocketMQ's layout: version `01`, 6 bytes of host identity, 2 of process
/// id, 4 of seconds since 2021-01-01, 4 of sequence — 34 upper-case hex characters.
pub fn new_message_id() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    static HOST: OnceLock<[u8; 6]> = OnceLock::new();
    let host = HOST.get_or_init(|| {
        // No MAC address is needed: any stable, likely-unique 6 bytes will do.
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0) as u64
            ^ u64::from(std::process::id()).rotate_left(29);
        let h = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let b = h.to_be_bytes();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    });
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_sub(1_609_459_200) as u32;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() & 0xffff) as u16;
    let mut bytes = Vec::with_capacity(17);
    bytes.push(1u8);
    bytes.extend_from_slice(host);
    bytes.extend_from_slice(&pid.to_be_bytes());
    bytes.extend_from_slice(&secs.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_are_unique_and_well_formed() {
        let a = super::new_message_id();
        let b = super::new_message_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("01"));
    }
}
