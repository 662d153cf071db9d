//! What every MessagingService handler needs: the NameServer view, the local broker groups, and
//! how to reach other nodes; plus routing of a queue to its group and leader.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;
use raftmq_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use super::renew::Renewals;
use crate::broker::service::BrokerService;
pub use crate::broker::service::LeaderInfo;
use crate::error::BrokerError;
use crate::forward::ClientChannels;
use crate::forward::forwarded;
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

/// Largest encoded gRPC message the client port accepts (a 4 MiB body plus headers, batches).
pub const CLIENT_MESSAGE_BYTES_MAX: usize = 32 << 20;

/// Counters of the MessagingService.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Time in the handler of every SendMessage answered.
    pub send_latency: raftmq_storage::latency::LatencyHistogram,
}

/// Shared state of the MessagingService handlers: the node's broker (through `Deref`), plus what
/// only the gRPC front end keeps.
pub struct Context {
    /// The broker: topics, groups, leaders, the rules every front end shares.
    pub broker: Arc<BrokerService>,
    /// Counters.
    pub stats: Arc<ServiceStats>,
    /// This node's client address as clients reach it.
    pub advertise: String,
    /// Channels to other nodes' client ports.
    pub channels: Arc<ClientChannels>,
    /// Clients connected to this node.
    pub sessions: Arc<Sessions>,
    /// Handed-out messages this node keeps invisible for their consumers (`auto_renew`).
    pub renewals: Renewals,
}

impl std::ops::Deref for Context {
    type Target = BrokerService;

    fn deref(&self) -> &BrokerService {
        &self.broker
    }
}

impl Context {
    /// The gRPC front end of `broker`, advertised at `advertise`.
    pub fn new(broker: Arc<BrokerService>, advertise: String, channels: Arc<ClientChannels>) -> Self {
        Self {
            broker,
            stats: Arc::default(),
            advertise,
            channels,
            sessions: Arc::default(),
            renewals: Renewals::default(),
        }
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
        let target = self.forward_target(g, forwarded_here(md))?;
        let client = self.client(&target.client_addr)?;
        call(client, forwarded(msg, md, self.node_id, FORWARD_TIMEOUT))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| leader_silent(target.node, &g, &s))
    }
}

/// Whether the request with `md` was forwarded to this node by another.
pub fn forwarded_here(md: &MetadataMap) -> bool {
    crate::forward::is_forwarded(md)
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
