//! Changes to the NameServer's metadata, as they travel through its Raft log, and their outcomes.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::model::ConsumeMode;
use super::model::ConsumerGroup;
use super::model::Member;
use super::model::MessageType;
use super::model::Permission;
use super::model::Topic;
use super::names::NameError;
use crate::types::NodeId;

/// A broker group as the initial cluster layout defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerGroupSpec {
    /// Group id, from 1.
    pub id: u32,
    /// Nodes holding a replica.
    pub members: BTreeSet<NodeId>,
}

/// What a new topic looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of queues, 1 to [`super::model::MAX_QUEUE_COUNT`].
    pub queue_count: u32,
    /// Accepted message type.
    pub message_type: MessageType,
    /// Client permission.
    pub permission: Permission,
    /// Seconds messages are kept.
    pub retention_secs: u64,
    /// Created by the system (retry and DLQ topics): reserved prefixes allowed.
    #[serde(default)]
    pub system: bool,
}

/// Changes to an existing topic; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicUpdate {
    /// New queue count; queues can only be added.
    pub queue_count: Option<u32>,
    /// New message type.
    pub message_type: Option<MessageType>,
    /// New permission.
    pub permission: Option<Permission>,
    /// New retention, seconds.
    pub retention_secs: Option<u64>,
}

/// What a new consumer group looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Group name.
    pub name: String,
    /// Clustering or broadcasting.
    pub mode: ConsumeMode,
    /// Orderly (FIFO) consumption.
    pub fifo: bool,
    /// Delivery attempts before the DLQ.
    pub max_delivery_attempts: u32,
    /// Where the group starts on a queue it never consumed.
    #[serde(default)]
    pub consume_from: super::model::ConsumeFrom,
}

impl GroupSpec {
    /// A group created on first use, with RocketMQ's defaults: clustering, not orderly, 17
    /// delivery attempts, starting by RocketMQ's rule for new groups ([`ConsumeFrom::Auto`]).
    ///
    /// [`ConsumeFrom::Auto`]: super::model::ConsumeFrom::Auto
    pub fn with_defaults(name: &str) -> Self {
        Self {
            name: name.to_string(),
            mode: super::model::ConsumeMode::Clustering,
            fifo: false,
            max_delivery_attempts: super::model::DEFAULT_MAX_DELIVERY_ATTEMPTS,
            consume_from: super::model::ConsumeFrom::Auto,
        }
    }
}

/// A change to the NameServer's metadata. Times are stamped by the leader before proposing, so
/// applying the command reads no clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MetaCommand {
    /// Records the cluster layout once; later calls change nothing (idempotent bootstrap).
    InitCluster {
        /// The initial nodes.
        members: Vec<Member>,
        /// The broker groups and their replicas.
        broker_groups: Vec<BrokerGroupSpec>,
    },
    /// Adds or updates a node's addresses (a Remoting address it announced is kept unless
    /// `member` names one).
    UpsertMember {
        /// The node.
        member: Member,
    },
    /// Records the Remoting address a node announced (`None`: it serves no Remoting port).
    SetRemotingAddr {
        /// The node.
        id: NodeId,
        /// Its Remoting address.
        addr: Option<String>,
    },
    /// Creates a topic and spreads its queues over the broker groups.
    CreateTopic {
        /// The topic.
        spec: TopicSpec,
        /// Leader time, ms since the epoch.
        now_ms: i64,
    },
    /// Changes a topic.
    UpdateTopic {
        /// Topic name.
        name: String,
        /// What to change.
        update: TopicUpdate,
        /// Leader time, ms since the epoch.
        now_ms: i64,
    },
    /// Deletes a topic's metadata.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// Creates a consumer group.
    CreateGroup {
        /// The group.
        spec: GroupSpec,
        /// Leader time, ms since the epoch.
        now_ms: i64,
    },
    /// Deletes a consumer group.
    DeleteGroup {
        /// Group name.
        name: String,
    },
    /// A broker group's leader as of `term`; older terms than the recorded one are ignored.
    ReportLeader {
        /// Broker group id.
        group: u32,
        /// Its leader.
        leader: NodeId,
        /// The leader's term.
        term: u64,
    },
    /// Marks node `id` as leaving for good (`raftmq admin node remove|replace`): it is given no
    /// more leaderships and its id is never given out again. Its member record stays while it is
    /// still in the NameServer group, so routes to groups it still leads keep working.
    RetireMember {
        /// The node.
        id: NodeId,
    },
    /// Drops the member record of a retired node once it left the NameServer group.
    ForgetMember {
        /// The node.
        id: NodeId,
    },
    /// Records a broker group's voters after a membership change.
    SetBrokerMembers {
        /// Broker group id.
        group: u32,
        /// Its voters.
        members: BTreeSet<NodeId>,
    },
}

/// Why the NameServer refused a change. Deterministic: every replica refuses the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The topic exists already.
    #[error("topic {0:?} already exists; use `topic update` to change it")]
    TopicExists(String),
    /// No such topic.
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    /// The consumer group exists already.
    #[error("consumer group {0:?} already exists")]
    GroupExists(String),
    /// No such consumer group.
    #[error("consumer group {0:?} does not exist")]
    GroupNotFound(String),
    /// A topic or group name breaks the naming rule.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A value is out of range; the message names the field and the range.
    #[error("{0}")]
    Invalid(String),
    /// The cluster layout has not been recorded yet, so there is nowhere to put queues.
    #[error("the cluster has no broker groups yet; wait for the nodes to finish starting")]
    NoBrokerGroups,
}

/// The outcome of applying a [`MetaCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaResponse {
    /// Applied; nothing to report.
    Done,
    /// The topic as it is after the change.
    Topic(Topic),
    /// The consumer group as it is after the change.
    Group(ConsumerGroup),
    /// Refused; nothing changed.
    Rejected(MetaError),
}
