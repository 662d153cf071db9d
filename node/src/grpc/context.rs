//! What every MessagingService handler needs: the NameServer view, the local broker groups, and
//! how to reach other nodes; plus routing of a queue to its group and leader.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;
use raftmq_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::nameserver::MetaError;
use raftmq_storage::nameserver::Topic;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use super::renew::Renewals;
use crate::broker::BrokerGroup;
use crate::broker::Brokers;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::forward::ClientChannels;
use crate::forward::forwarded;
use crate::nameserver::NameServer;
use crate::session::Sessions;

/// Response header naming the leader that served (or should serve) a group's request:
/// `<group> <node id> <term> <client address>`. Our SDK switches to that leader at once.
pub const LEADER_HEADER: &str = "x-raftmq-leader";

/// Deadline of a unary request forwarded to a leader.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A forwarded request the leader of `g` (node `node`) did not answer.
pub fn leader_silent(node: NodeId, g: &impl std::fmt::Display, s: &tonic::Status) -> BrokerError {
    BrokerError::Unavailable(format!("leader node {node} of {g} did not answer: {}", s.message()))
}

/// The leader's refusal of a forwarded request, passed on as it was.
pub fn leader_refused(s: pb::Status) -> BrokerError {
    BrokerError::BadRequest {
        code: super::status::reason(Code::try_from(s.code).unwrap_or(Code::InternalError)),
        message: s.message,
    }
}

/// The status of a leader's answer to a forwarded request, as a result.
pub fn leader_ok(s: Option<pb::Status>) -> Result<(), BrokerError> {
    match s {
        Some(s) if s.code == Code::Ok as i32 => Ok(()),
        Some(s) => Err(leader_refused(s)),
        None => Err(BrokerError::Internal("leader answered without status".into())),
    }
}

/// Largest message body accepted (RocketMQ's default `maxMessageSize`).
pub const BODY_BYTES_MAX: usize = 4 << 20;
/// Largest total size of a message's user properties.
pub const PROPERTIES_BYTES_MAX: usize = 16 << 10;
/// Largest encoded gRPC message the client port accepts (a 4 MiB body plus headers, batches).
pub const CLIENT_MESSAGE_BYTES_MAX: usize = 32 << 20;

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

/// Counters of the MessagingService.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Time in the handler of every SendMessage answered.
    pub send_latency: raftmq_storage::latency::LatencyHistogram,
}

/// Consumer settings of the MessagingService (from the `[broker]` config section).
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Shortest invisible time a receive or a change of invisible time may ask for, ms.
    pub invisible_ms_min: i64,
    /// Create a consumer group on first use (RocketMQ's `autoCreateSubscriptionGroup`).
    pub auto_create_groups: bool,
    /// Furthest a delayed message's delivery time may lie ahead, ms.
    pub delay_max_ms: i64,
    /// Create a topic on its first send or route query (RocketMQ's `autoCreateTopicEnable`).
    pub auto_create_topics: bool,
    /// The retry schedule push consumers get in their settings: the wait before attempt 2, 3, ...
    pub retry_delays_ms: Vec<u64>,
}

/// Shared state of the MessagingService handlers.
pub struct Context {
    /// Counters.
    pub stats: Arc<ServiceStats>,
    /// This node.
    pub node_id: NodeId,
    /// This node's client address as clients reach it.
    pub advertise: String,
    /// The NameServer.
    pub ns: NameServer,
    /// Broker groups hosted here.
    pub brokers: Brokers,
    /// Channels to other nodes' client ports.
    pub channels: Arc<ClientChannels>,
    /// Clients connected to this node.
    pub sessions: Arc<Sessions>,
    /// Handed-out messages this node keeps invisible for their consumers (`auto_renew`).
    pub renewals: Renewals,
    /// Consumer settings.
    pub consumer: ConsumerOptions,
    rr: AtomicUsize,
}

impl Context {
    /// A context for node `node_id`.
    pub fn new(
        node_id: NodeId,
        advertise: String,
        ns: NameServer,
        brokers: Brokers,
        channels: Arc<ClientChannels>,
        consumer: ConsumerOptions,
    ) -> Self {
        Self {
            stats: Arc::default(),
            node_id,
            advertise,
            ns,
            brokers,
            channels,
            sessions: Arc::default(),
            renewals: Renewals::default(),
            consumer,
            rr: AtomicUsize::new(0),
        }
    }

    /// A round-robin counter.
    pub fn next_rr(&self) -> usize {
        self.rr.fetch_add(1, Ordering::Relaxed)
    }

    /// The topic's metadata, from this node's NameServer replica.
    pub async fn topic(&self, name: &str) -> Result<Topic, BrokerError> {
        if let Some(t) = self.topic_local(name)? {
            return Ok(t);
        }
        // This node's copy of the metadata may not have applied a topic created a moment ago
        // (through another node): catch up with the NameServer leader before saying it does not
        // exist. (Boxed: the slow path's remote call would otherwise inflate every handler's
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
            return Err(BrokerError::BadRequest {
                code: Reason::IllegalTopic,
                message: "topic name is empty".into(),
            });
        }
        Ok(self.ns.read_local(|s| s.topics.get(name).cloned()))
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

    /// The value of [`LEADER_HEADER`] for group `id`.
    pub fn leader_header(&self, id: GroupId) -> Option<String> {
        self.leader(id).map(|l| format!("{} {} {} {}", id.name(), l.node, l.term, l.client_addr))
    }

    /// A client of `addr`'s MessagingService over the shared channels.
    pub fn client(&self, addr: &str) -> Result<MessagingServiceClient<Channel>, BrokerError> {
        let ch = self.channels.get(addr).map_err(BrokerError::Internal)?;
        Ok(MessagingServiceClient::new(ch)
            .max_decoding_message_size(CLIENT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(CLIENT_MESSAGE_BYTES_MAX))
    }

    /// Sends the unary request `msg` on to the leader of `g` (once) with `call`; its answer, or
    /// why the leader could not be asked.
    pub async fn forward_unary<Q, A, F, Fut>(
        &self,
        g: GroupId,
        md: &MetadataMap,
        msg: Q,
        call: F,
    ) -> Result<A, BrokerError>
    where
        F: FnOnce(MessagingServiceClient<Channel>, tonic::Request<Q>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<A>, tonic::Status>>,
    {
        let target = self.forward_target(g, md)?;
        let client = self.client(&target.client_addr)?;
        call(client, forwarded(msg, md, self.node_id, FORWARD_TIMEOUT))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| leader_silent(target.node, &g, &s))
    }

    /// Where to forward a request for group `id` that this node does not lead, or why it cannot.
    /// A request that was already forwarded is never forwarded again.
    pub fn forward_target(&self, id: GroupId, md: &MetadataMap) -> Result<LeaderInfo, BrokerError> {
        let leader = self.leader(id).filter(|l| l.node != self.node_id);
        match leader {
            Some(l) if !crate::forward::is_forwarded(md) => Ok(l),
            Some(l) => Err(BrokerError::Unavailable(format!(
                "{id}: leadership is moving; the leader is node {} at {}; retry there",
                l.node, l.client_addr
            ))),
            None => Err(BrokerError::Unavailable(format!("{id} has no leader right now; retry in a moment"))),
        }
    }
}

/// Time left before the caller's gRPC deadline (`grpc-timeout`), if it sent one.
pub fn deadline_left(md: &MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        let mut md = MetadataMap::new();
        assert_eq!(deadline_left(&md), None);
        md.insert("grpc-timeout", "1500m".parse().unwrap());
        assert_eq!(deadline_left(&md), Some(Duration::from_millis(1500)));
        md.insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(deadline_left(&md), Some(Duration::from_secs(3)));
    }
}
