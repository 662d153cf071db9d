//! The broker of this node, as every protocol front end sees it: topics and consumer groups
//! (created on first use when configured), which broker group holds a queue and who leads it,
//! and the one-hop rule for requests this node cannot serve. Front ends translate their wire
//! into calls on [`BrokerService`] and on the local [`BrokerGroup`]s; no rule is written twice.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::nameserver::ConsumerGroup;
use raftmq_storage::nameserver::DEFAULT_QUEUE_COUNT;
use raftmq_storage::nameserver::DEFAULT_RETENTION_SECS;
use raftmq_storage::nameserver::GroupSpec;
use raftmq_storage::nameserver::MessageType;
use raftmq_storage::nameserver::MetaError;
use raftmq_storage::nameserver::MetaState;
use raftmq_storage::nameserver::Permission;
use raftmq_storage::nameserver::Topic;
use raftmq_storage::nameserver::TopicSpec;
use raftmq_storage::nameserver::names;
use tokio::time::Instant;

use super::BrokerGroup;
use super::Brokers;
use super::moves::Destination;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::nameserver::NameServer;

/// How long new metadata may take to reach this node's NameServer replica.
const VISIBLE_WAIT: Duration = Duration::from_secs(3);

/// Broker settings shared by every front end (from the `[broker]` config section).
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Shortest invisible time a receive or a change of invisible time may ask for, ms.
    pub invisible_ms_min: i64,
    /// Create a consumer group on first use (RocketMQ's `autoCreateSubscriptionGroup`).
    pub auto_create_groups: bool,
    /// Furthest a delayed message's delivery time may lie ahead, ms.
    pub delay_max_ms: i64,
    /// Create a topic on its first send or route query (RocketMQ's `autoCreateTopicEnable`).
    pub auto_create_topics: bool,
    /// The retry schedule of consumers: the wait before attempt 2, 3, ...
    pub retry_delays_ms: Vec<u64>,
}

/// Where a group's requests go.
#[derive(Debug, Clone)]
pub struct LeaderInfo {
    /// Leader node.
    pub node: NodeId,
    /// Its term.
    pub term: u64,
    /// Its client address.
    pub client_addr: String,
}

/// The broker of this node.
pub struct BrokerService {
    /// This node.
    pub node_id: NodeId,
    /// The NameServer.
    pub ns: NameServer,
    /// Broker groups hosted here.
    pub brokers: Brokers,
    /// Settings.
    pub options: BrokerOptions,
    rr: AtomicUsize,
}

impl BrokerService {
    /// The broker of node `node_id`.
    pub fn new(node_id: NodeId, ns: NameServer, brokers: Brokers, options: BrokerOptions) -> Arc<Self> {
        Arc::new(Self { node_id, ns, brokers, options, rr: AtomicUsize::new(0) })
    }

    /// A round-robin counter.
    pub fn next_rr(&self) -> usize {
        self.rr.fetch_add(1, Ordering::Relaxed)
    }

    /// The topic's metadata, from this node's NameServer replica (caught up with the leader when
    /// the topic is not there yet).
    pub async fn topic(&self, name: &str) -> Result<Topic, BrokerError> {
        if let Some(t) = self.topic_local(name)? {
            return Ok(t);
        }
        // This node's copy of the metadata may not have applied a topic created a moment ago
        // (through another node): catch up with the NameServer leader before saying it does not
        // exist. (Boxed: the slow path's remote call would otherwise inflate every caller's
        // future.)
        match Box::pin(self.ns.read_current(|s| s.topics.get(name).cloned())).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(MetaError::TopicNotFound(name.to_string()).into()),
            Err(e) => {
                tracing::debug!(topic = %name, error = %e, "no current metadata; answering from the local copy");
                Err(MetaError::TopicNotFound(name.to_string()).into())
            }
        }
    }

    /// Topic `name` in this node's copy of the metadata (which may lag by a moment).
    pub fn topic_local(&self, name: &str) -> Result<Option<Topic>, BrokerError> {
        if name.is_empty() {
            return Err(BrokerError::invalid(Reason::IllegalTopic, "topic name is empty"));
        }
        Ok(self.ns.read_local(|s| s.topics.get(name).cloned()))
    }

    /// Topic `name` for a producer: created (MIXED, the default queue count) when it does not
    /// exist and auto-creation is on (RocketMQ's `autoCreateTopicEnable`; off by default, so a
    /// typo in a topic name is an error, not a new topic); TOPIC_NOT_FOUND otherwise.
    pub async fn producer_topic(&self, name: &str) -> Result<Topic, BrokerError> {
        match self.topic(name).await {
            Err(BrokerError::NotFound { .. }) if self.options.auto_create_topics => {}
            other => return other,
        }
        names::check_topic(name).map_err(MetaError::Name)?;
        let spec = TopicSpec {
            name: name.to_string(),
            queue_count: DEFAULT_QUEUE_COUNT,
            message_type: MessageType::Mixed,
            permission: Permission::ReadWrite,
            retention_secs: DEFAULT_RETENTION_SECS,
            system: false,
        };
        let created = self.ns.create_topic_for_client(spec).await;
        self.created_here(created, &format!("topic {name:?}"), |s| s.topics.get(name).cloned()).await
    }

    /// The consumer group `name`; created with the defaults (clustering, 17 delivery attempts,
    /// starting by RocketMQ's rule for new groups) when it does not exist and auto-creation is on
    /// (RocketMQ's `autoCreateSubscriptionGroup`).
    pub async fn consumer_group(&self, name: &str) -> Result<ConsumerGroup, BrokerError> {
        if let Some(g) = self.ns.read_local(|s| s.groups.get(name).cloned()) {
            return Ok(g);
        }
        if !self.options.auto_create_groups {
            return Err(MetaError::GroupNotFound(name.to_string()).into());
        }
        let created = self.ns.create_group_for_client(GroupSpec::with_defaults(name)).await;
        self.created_here(created, &format!("consumer group {name:?}"), |s| s.groups.get(name).cloned()).await
    }

    /// After this node asked the NameServer to create something on a client's behalf (`created`:
    /// the answer; "already exists" means another node was first): the thing, once this node's
    /// NameServer replica has it (within [`VISIBLE_WAIT`]).
    async fn created_here<T>(
        &self,
        created: Result<(), BrokerError>,
        what: &str,
        read: impl Fn(&MetaState) -> Option<T>,
    ) -> Result<T, BrokerError> {
        match created {
            Ok(()) => tracing::info!(what, "created on first use"),
            Err(BrokerError::BadRequest { ref message, .. }) if message.contains("already exists") => {}
            Err(e) => return Err(e),
        }
        let until = Instant::now() + VISIBLE_WAIT;
        loop {
            if let Some(v) = self.ns.read_local(&read) {
                return Ok(v);
            }
            if Instant::now() >= until {
                return Err(BrokerError::Unavailable(format!(
                    "{what} was created but has not reached this node yet; retry"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The broker group storing queue `queue` of `topic`.
    pub fn queue_group(&self, topic: &Topic, queue: i32) -> Result<GroupId, BrokerError> {
        usize::try_from(queue).ok().and_then(|q| topic.queues.get(q)).map(|q| GroupId(q.group)).ok_or_else(
            || {
                BrokerError::bad_request(format!(
                    "queue {queue} does not exist: topic {:?} has queues 0-{}",
                    topic.name,
                    topic.queues.len().saturating_sub(1)
                ))
            },
        )
    }

    /// The local broker group `id` if this node leads it.
    pub fn local_leader(&self, id: GroupId) -> Option<&Arc<BrokerGroup>> {
        self.brokers.get(id).filter(|b| b.group.is_leader())
    }

    /// The current leader of broker group `id`: this node's replica knows it first hand; the
    /// NameServer's record is the fallback.
    pub fn leader(&self, id: GroupId) -> Option<LeaderInfo> {
        if let Some(b) = self.brokers.get(id)
            && let Some(node) = b.group.leader_id()
            && let Some(info) = b.group.leader().map(|(_, i)| i).or_else(|| self.ns.node_info(node))
        {
            return Some(LeaderInfo { node, term: b.group.term(), client_addr: info.client_addr });
        }
        self.ns.read_local(|s| {
            let bg = s.broker_group(id)?;
            let node = bg.leader?;
            let m = s.members.get(&node)?;
            Some(LeaderInfo { node, term: bg.term, client_addr: m.client_addr.clone() })
        })
    }

    /// Where to forward a request for group `id` that this node does not lead, or why it cannot.
    /// A request that was already forwarded is never forwarded again (one hop).
    pub fn forward_target(&self, id: GroupId, forwarded: bool) -> Result<LeaderInfo, BrokerError> {
        let leader = self.leader(id).filter(|l| l.node != self.node_id);
        match leader {
            Some(l) if !forwarded => Ok(l),
            Some(l) => Err(BrokerError::Unavailable(format!(
                "{id}: leadership is moving; the leader is node {} at {}; retry there",
                l.node, l.client_addr
            ))),
            None => Err(BrokerError::Unavailable(format!("{id} has no leader right now; retry in a moment"))),
        }
    }

    /// Waits until group `g` has a leader other than `gone`, until `until`; whether one came.
    pub async fn await_leader(&self, g: GroupId, gone: Option<NodeId>, until: Instant) -> bool {
        let Some(b) = self.brokers.get(g) else { return false };
        let mut rx = b.group.watch_leader();
        let wait = async {
            loop {
                if rx.borrow_and_update().is_some_and(|l| Some(l) != gone) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout_at(until, wait).await.unwrap_or(false)
    }

    /// The dead-letter queue of consumer group `group` on broker group `broker`, if the group
    /// has its `%DLQ%` topic (created with the group).
    pub fn dead_letter_queue(&self, group: &str, broker: GroupId) -> Option<Destination> {
        self.ns.read_local(|s| Destination::of(s, names::dlq_topic(group), broker))
    }
}

impl BrokerService {
    /// How long a message whose `attempt`-th delivery failed waits before the next one (the
    /// configured schedule, RocketMQ's 16 steps by default; its last step repeats).
    pub fn retry_delay_ms(&self, attempt: u32) -> i64 {
        let d = &self.options.retry_delays_ms;
        d.get((attempt.max(1) - 1) as usize).or(d.last()).copied().unwrap_or(10_000) as i64
    }
}
