//! The NameServer's records: cluster members, topics and their routes, broker groups, consumer
//! groups. They are persisted as JSON values (small, rarely written, read by operators).

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::types::GroupId;
use crate::types::NodeId;

/// Default retention of a topic's messages: 72 hours, as RocketMQ's `fileReservedTime`.
pub const DEFAULT_RETENTION_SECS: u64 = 72 * 3600;
/// Default number of queues of a new topic.
pub const DEFAULT_QUEUE_COUNT: u32 = 8;
/// Most queues a topic may have.
pub const MAX_QUEUE_COUNT: u32 = 1024;
/// Default delivery attempts of a consumer group before a message goes to the DLQ (1 + 16 retries).
pub const DEFAULT_MAX_DELIVERY_ATTEMPTS: u32 = 17;

/// Which kinds of messages a topic accepts (RocketMQ 5 topic message type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageType {
    /// Plain messages.
    Normal,
    /// Ordered by message group.
    Fifo,
    /// Delivered at a later time.
    Delay,
    /// Half messages committed or rolled back.
    Transaction,
    /// Any of the above.
    Mixed,
}

impl MessageType {
    /// Parses the names used by the CLI and config (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "NORMAL" => Self::Normal,
            "FIFO" => Self::Fifo,
            "DELAY" => Self::Delay,
            "TRANSACTION" => Self::Transaction,
            "MIXED" => Self::Mixed,
            _ => return None,
        })
    }

    /// Upper-case name, as RocketMQ prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Fifo => "FIFO",
            Self::Delay => "DELAY",
            Self::Transaction => "TRANSACTION",
            Self::Mixed => "MIXED",
        }
    }
}

/// What clients may do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// Consume only.
    Read,
    /// Produce only.
    Write,
    /// Produce and consume.
    ReadWrite,
}

impl Permission {
    /// Parses `r`, `w`, `rw` or the long names (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "R" | "READ" => Self::Read,
            "W" | "WRITE" => Self::Write,
            "RW" | "READ_WRITE" => Self::ReadWrite,
            _ => return None,
        })
    }

    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadWrite => "READ_WRITE",
        }
    }
}

/// A node of the cluster and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id, never reused.
    pub id: NodeId,
    /// Internal Raft/RPC address.
    pub raft_addr: String,
    /// Client address (RocketMQ gRPC and admin).
    pub client_addr: String,
    /// Address of its Remoting port (RocketMQ 4.x clients), as the node announced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remoting_addr: Option<String>,
}

/// Where one queue of a topic lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRoute {
    /// Queue id within the topic, from 0.
    pub queue_id: u32,
    /// The broker group that stores the queue.
    pub group: u32,
}

/// A topic and its route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Accepted message type.
    pub message_type: MessageType,
    /// Client permission.
    pub permission: Permission,
    /// Seconds a message is kept.
    pub retention_secs: u64,
    /// One entry per queue, in queue-id order.
    pub queues: Vec<QueueRoute>,
    /// Creation time (leader clock, stamped into the command), ms since the epoch.
    pub created_at_ms: i64,
    /// Last change time, ms since the epoch.
    pub updated_at_ms: i64,
}

impl Topic {
    /// Number of queues.
    pub fn queue_count(&self) -> u32 {
        self.queues.len() as u32
    }
}

/// A broker group: a Raft group whose log is a CommitLog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerGroupInfo {
    /// Group id (1, 2, ...).
    pub id: u32,
    /// Name (`broker-a`, ...).
    pub name: String,
    /// Nodes holding a replica.
    pub members: BTreeSet<NodeId>,
    /// Last reported leader.
    pub leader: Option<NodeId>,
    /// Term of the last report; older reports are ignored.
    pub term: u64,
}

/// How a consumer group shares messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumeMode {
    /// Each message goes to one consumer of the group; progress kept by the broker.
    Clustering,
    /// Every consumer gets every message; progress kept by the client.
    Broadcasting,
}

impl ConsumeMode {
    /// Parses `clustering` or `broadcasting` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "CLUSTERING" => Self::Clustering,
            "BROADCASTING" => Self::Broadcasting,
            _ => return None,
        })
    }

    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clustering => "CLUSTERING",
            Self::Broadcasting => "BROADCASTING",
        }
    }
}

/// Where a consumer group starts on a queue it never consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumeFrom {
    /// After the newest message when the group was created: the group receives every message
    /// stored from its creation on (the default of a group created explicitly).
    #[default]
    Last,
    /// The oldest stored message.
    First,
    /// The first message stored at or after this time, ms since the epoch.
    Timestamp(i64),
    /// RocketMQ's rule for a group created on first use: the queue's head if the queue was never
    /// trimmed and its head is still in memory, otherwise the newest message.
    Auto,
}

impl ConsumeFrom {
    /// Parses `last`, `first`, `auto`, or a time in ms since the epoch.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "last" | "" => Some(Self::Last),
            "first" => Some(Self::First),
            "auto" => Some(Self::Auto),
            other => other.parse::<i64>().ok().map(Self::Timestamp),
        }
    }

    /// `LAST`, `FIRST`, `AUTO` or the timestamp.
    pub fn to_text(self) -> String {
        match self {
            Self::Last => "LAST".into(),
            Self::First => "FIRST".into(),
            Self::Auto => "AUTO".into(),
            Self::Timestamp(ms) => ms.to_string(),
        }
    }
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroup {
    /// Group name.
    pub name: String,
    /// Clustering or broadcasting.
    pub mode: ConsumeMode,
    /// Whether messages of one message group are delivered in order, one at a time.
    pub fifo: bool,
    /// Delivery attempts before a message goes to the group's DLQ.
    pub max_delivery_attempts: u32,
    /// Where the group starts on a queue it never consumed.
    #[serde(default)]
    pub consume_from: ConsumeFrom,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
}

/// Everything the NameServer knows. Ordered maps: iteration order is part of determinism.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    /// Whether the cluster layout (members, broker groups) was recorded.
    pub initialized: bool,
    /// Nodes of the cluster.
    pub members: BTreeMap<NodeId, Member>,
    /// Ids of removed nodes; never given out again.
    pub retired: BTreeSet<NodeId>,
    /// Broker groups by id.
    pub broker_groups: BTreeMap<u32, BrokerGroupInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// Consumer groups by name.
    pub groups: BTreeMap<String, ConsumerGroup>,
}

impl MetaState {
    /// The broker group of `group`, if known.
    pub fn broker_group(&self, group: GroupId) -> Option<&BrokerGroupInfo> {
        self.broker_groups.get(&group.0)
    }
}
