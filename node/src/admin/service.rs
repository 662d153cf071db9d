//! The admin gRPC service on the client port: cluster status, topics and consumer groups.
//!
//! Changes go through the NameServer leader; a follower forwards them (one hop, see
//! [`crate::forward`]). Reads are linearizable and so are served by the leader too.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use raftmq_proto::admin as pb;
use raftmq_proto::admin::admin_service_client::AdminServiceClient;
use raftmq_proto::admin::admin_service_server::AdminService;
use raftmq_raft::GroupStatus;
use raftmq_raft::RaftError;
use raftmq_raft::RaftHost;
use raftmq_storage::GroupId;
use raftmq_storage::nameserver::ConsumeFrom;
use raftmq_storage::nameserver::ConsumeMode;
use raftmq_storage::nameserver::DEFAULT_MAX_DELIVERY_ATTEMPTS;
use raftmq_storage::nameserver::DEFAULT_QUEUE_COUNT;
use raftmq_storage::nameserver::DEFAULT_RETENTION_SECS;
use raftmq_storage::nameserver::GroupSpec;
use raftmq_storage::nameserver::MessageType;
use raftmq_storage::nameserver::MetaCommand;
use raftmq_storage::nameserver::MetaError;
use raftmq_storage::nameserver::MetaResponse;
use raftmq_storage::nameserver::Permission;
use raftmq_storage::nameserver::TopicSpec;
use raftmq_storage::nameserver::TopicUpdate;
use raftmq_storage::nameserver::names;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::transport::Channel;

use super::convert;
use super::members::Members;
use crate::broker::Brokers;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::forward::ClientChannels;
use crate::forward::is_forwarded;
use crate::forward::mark_forwarded;
use crate::grpc::status::ok_status;
use crate::grpc::status::status;
use crate::nameserver::NameServer;

/// How long cluster status waits for each node's answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// A response that carries a RocketMQ status.
trait Answer: Default {
    fn set_status(&mut self, s: raftmq_proto::rocketmq::Status);

    fn error(e: BrokerError) -> Self {
        let mut r = Self::default();
        r.set_status(status(&e));
        r
    }
}

macro_rules! answer {
    ($($t:ty),*) => {$(
        impl Answer for $t {
            fn set_status(&mut self, s: raftmq_proto::rocketmq::Status) {
                self.status = Some(s);
            }
        }
    )*};
}
answer!(
    pb::TopicResponse,
    pb::ListTopicsResponse,
    pb::GroupResponse,
    pb::ListGroupsResponse,
    pb::StatusResponse,
    pb::ClusterStatusResponse,
    pb::QueryMessageResponse,
    pb::ConsumerHeartbeatResponse,
    pb::ConsumerLagResponse
);

/// The admin service of one node.
pub struct AdminServiceImpl {
    pub(super) node_id: u64,
    pub(super) ns: NameServer,
    brokers: Brokers,
    pub(super) host: Arc<RaftHost>,
    pub(super) channels: Arc<ClientChannels>,
    members: Members,
    /// The Remoting front end, whose clients `ListClients` shows.
    pub(super) remoting: Option<Arc<crate::remoting::Remoting>>,
}

impl AdminServiceImpl {
    /// The service of node `node_id`.
    pub fn new(
        node_id: u64,
        ns: NameServer,
        brokers: Brokers,
        host: Arc<RaftHost>,
        channels: Arc<ClientChannels>,
    ) -> Self {
        Self { node_id, ns, brokers, host, channels, members: Members::default(), remoting: None }
    }

    /// Shows the clients of `remoting` in `ListClients`.
    pub fn with_remoting(mut self, remoting: Arc<crate::remoting::Remoting>) -> Self {
        self.remoting = Some(remoting);
        self
    }

    /// Runs `local` if this node leads the NameServer, else forwards with `remote` (once).
    async fn on_leader<Req, Resp, L, LF, R, RF>(
        &self,
        req: Request<Req>,
        local: L,
        remote: R,
    ) -> Result<Response<Resp>, Status>
    where
        Resp: Answer,
        L: FnOnce(Req) -> LF,
        LF: Future<Output = Result<Resp, BrokerError>>,
        R: FnOnce(AdminServiceClient<Channel>, Request<Req>) -> RF,
        RF: Future<Output = Result<Response<Resp>, Status>>,
    {
        if self.ns.is_leader() {
            let resp = local(req.into_inner()).await.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "admin request refused");
                Resp::error(e)
            });
            return Ok(Response::new(resp));
        }
        let leader = self.ns.leader();
        let (id, info) = match leader {
            Some((id, info)) if id != self.node_id && !is_forwarded(req.metadata()) => (id, info),
            _ => {
                let e = RaftError::NotLeader { group: GroupId::NAMESERVER, leader };
                return Ok(Response::new(Resp::error(BrokerError::NotLeader(e))));
            }
        };
        let channel = match self.channels.get(&info.client_addr) {
            Ok(c) => c,
            Err(e) => return Ok(Response::new(Resp::error(BrokerError::Internal(e)))),
        };
        let mut fwd = Request::new(req.into_inner());
        fwd.set_timeout(Duration::from_secs(10));
        mark_forwarded(&mut fwd, self.node_id);
        tracing::debug!(leader = id, addr = %info.client_addr, "forwarding admin request to the nameserver leader");
        match remote(AdminServiceClient::new(channel), fwd).await {
            Ok(r) => Ok(r),
            Err(s) => {
                tracing::warn!(leader = id, error = %s, "forwarding admin request failed");
                Ok(Response::new(Resp::error(BrokerError::Unavailable(format!(
                    "the nameserver leader (node {id} at {}) did not answer: {}; retry shortly",
                    info.client_addr,
                    s.message()
                )))))
            }
        }
    }

    async fn cluster_status_local(&self) -> pb::ClusterStatusResponse {
        let ns_group = self.ns.group();
        let members = ns_group
            .members()
            .into_iter()
            .map(|(id, n)| pb::Member { id, raft_addr: n.raft_addr, client_addr: n.client_addr })
            .collect();
        let mut groups = Vec::new();
        for g in self.host.groups().all() {
            let nodes: Vec<u64> = g.members().into_iter().map(|(id, _)| id).collect();
            let answers =
                join_all(nodes.iter().map(|n| self.host.remote_status(*n, g.id(), STATUS_TIMEOUT))).await;
            groups.push(group_view(g.id(), &g.status(), &nodes, answers));
        }
        let retired = self.ns.retired();
        pb::ClusterStatusResponse {
            status: Some(ok_status()),
            members,
            groups,
            node_id: self.node_id,
            retired,
        }
    }
}

/// Combines every replica's own answer with the leader's view of what each matched.
fn group_view(
    id: GroupId,
    local: &GroupStatus,
    nodes: &[u64],
    answers: Vec<Result<GroupStatus, String>>,
) -> pb::GroupStatus {
    let leader_view = answers
        .iter()
        .filter_map(|a| a.as_ref().ok())
        .filter(|s| s.is_leader())
        .max_by_key(|s| s.term)
        .cloned();
    let replicas = nodes
        .iter()
        .zip(answers)
        .map(|(node, a)| {
            let matched = leader_view
                .as_ref()
                .and_then(|l| l.replication.iter().find(|(n, _)| n == node).and_then(|(_, m)| *m));
            match a {
                Ok(s) => pb::ReplicaStatus {
                    node_id: *node,
                    role: s.role,
                    term: s.term,
                    last_log_index: s.last_log_index,
                    committed: s.committed,
                    applied: s.applied,
                    matched_index: matched,
                    error: String::new(),
                    snapshot: s.snapshot,
                    purged: s.purged,
                },
                Err(e) => pb::ReplicaStatus {
                    node_id: *node,
                    role: "unreachable".into(),
                    matched_index: matched,
                    error: e,
                    ..Default::default()
                },
            }
        })
        .collect();
    let (leader, term) = match &leader_view {
        Some(l) => (Some(l.node_id), l.term),
        None => (local.leader, local.term),
    };
    pb::GroupStatus {
        name: id.name(),
        id: id.0,
        leader,
        term,
        voters: local.voters.clone(),
        learners: local.learners.clone(),
        replicas,
    }
}

fn parse_or<T>(
    v: &str,
    default: T,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
    allowed: &str,
) -> Result<T, BrokerError> {
    if v.is_empty() {
        return Ok(default);
    }
    parse(v).ok_or_else(|| BrokerError::bad_request(format!("{what} {v:?} is not one of {allowed}")))
}

const MESSAGE_TYPES: &str = "NORMAL, FIFO, DELAY, TRANSACTION, MIXED";
const PERMISSIONS: &str = "READ, WRITE, READ_WRITE";

fn message_type(v: &str) -> Result<MessageType, BrokerError> {
    parse_or(v, MessageType::Normal, MessageType::parse, "message type", MESSAGE_TYPES)
}

fn permission(v: &str) -> Result<Permission, BrokerError> {
    parse_or(v, Permission::ReadWrite, Permission::parse, "permission", PERMISSIONS)
}

fn or_default<T: Default + PartialEq>(v: T, default: T) -> T {
    if v == T::default() { default } else { v }
}

impl AdminServiceImpl {
    async fn create_topic_local(&self, r: pb::CreateTopicRequest) -> Result<pb::TopicResponse, BrokerError> {
        let spec = TopicSpec {
            name: r.name,
            queue_count: or_default(r.queue_count, DEFAULT_QUEUE_COUNT),
            message_type: message_type(&r.message_type)?,
            permission: permission(&r.permission)?,
            retention_secs: or_default(r.retention_secs, DEFAULT_RETENTION_SECS),
            system: false,
        };
        let name = spec.name.clone();
        tracing::info!(topic = %name, queues = spec.queue_count, "create topic");
        self.ns.propose(MetaCommand::CreateTopic { spec, now_ms: now_ms() }).await?;
        self.describe_topic_local(pb::DescribeTopicRequest { name }).await
    }

    async fn update_topic_local(&self, r: pb::UpdateTopicRequest) -> Result<pb::TopicResponse, BrokerError> {
        let update = TopicUpdate {
            queue_count: r.queue_count,
            message_type: r.message_type.as_deref().map(message_type).transpose()?,
            permission: r.permission.as_deref().map(permission).transpose()?,
            retention_secs: r.retention_secs,
        };
        tracing::info!(topic = %r.name, ?update, "update topic");
        self.ns.propose(MetaCommand::UpdateTopic { name: r.name.clone(), update, now_ms: now_ms() }).await?;
        self.describe_topic_local(pb::DescribeTopicRequest { name: r.name }).await
    }

    async fn delete_topic_local(&self, r: pb::DeleteTopicRequest) -> Result<pb::StatusResponse, BrokerError> {
        tracing::info!(topic = %r.name, "delete topic");
        self.ns.propose(MetaCommand::DeleteTopic { name: r.name }).await?;
        Ok(pb::StatusResponse { status: Some(ok_status()) })
    }

    async fn describe_topic_local(
        &self,
        r: pb::DescribeTopicRequest,
    ) -> Result<pb::TopicResponse, BrokerError> {
        let topic = self
            .ns
            .read(|s| s.topics.get(&r.name).map(|t| convert::topic(s, t)))
            .await?
            .ok_or(MetaError::TopicNotFound(r.name))?;
        Ok(pb::TopicResponse { status: Some(ok_status()), topic: Some(topic) })
    }

    async fn list_topics_local(&self) -> Result<pb::ListTopicsResponse, BrokerError> {
        let topics = self.ns.read(|s| s.topics.values().map(|t| convert::topic(s, t)).collect()).await?;
        Ok(pb::ListTopicsResponse { status: Some(ok_status()), topics })
    }

    async fn create_group_local(&self, r: pb::CreateGroupRequest) -> Result<pb::GroupResponse, BrokerError> {
        let mode = parse_or(
            &r.mode,
            ConsumeMode::Clustering,
            ConsumeMode::parse,
            "mode",
            "CLUSTERING, BROADCASTING",
        )?;
        let spec = GroupSpec {
            name: r.name,
            mode,
            fifo: r.fifo,
            max_delivery_attempts: or_default(r.max_delivery_attempts, DEFAULT_MAX_DELIVERY_ATTEMPTS),
            consume_from: parse_or(
                &r.consume_from,
                ConsumeFrom::Last,
                ConsumeFrom::parse,
                "consume_from",
                "LAST, FIRST, AUTO, or a time in ms since the epoch",
            )?,
        };
        tracing::info!(group = %spec.name, "create consumer group");
        match self.ns.propose(MetaCommand::CreateGroup { spec, now_ms: now_ms() }).await? {
            MetaResponse::Group(g) => {
                Ok(pb::GroupResponse { status: Some(ok_status()), group: Some(convert::group(&g)) })
            }
            other => Err(BrokerError::Internal(format!("unexpected result {other:?}"))),
        }
    }

    async fn delete_group_local(&self, r: pb::DeleteGroupRequest) -> Result<pb::StatusResponse, BrokerError> {
        tracing::info!(group = %r.name, "delete consumer group");
        self.ns.propose(MetaCommand::DeleteGroup { name: r.name }).await?;
        Ok(pb::StatusResponse { status: Some(ok_status()) })
    }

    async fn describe_group_local(
        &self,
        r: pb::DescribeGroupRequest,
    ) -> Result<pb::GroupResponse, BrokerError> {
        let g = self
            .ns
            .read(|s| s.groups.get(&r.name).map(convert::group))
            .await?
            .ok_or(MetaError::GroupNotFound(r.name))?;
        Ok(pb::GroupResponse { status: Some(ok_status()), group: Some(g) })
    }

    async fn list_groups_local(&self) -> Result<pb::ListGroupsResponse, BrokerError> {
        let groups = self.ns.read(|s| s.groups.values().map(convert::group).collect()).await?;
        Ok(pb::ListGroupsResponse { status: Some(ok_status()), groups })
    }
}

impl AdminServiceImpl {
    async fn consumer_heartbeat_local(
        &self,
        r: pb::ConsumerHeartbeatRequest,
    ) -> Result<pb::ConsumerHeartbeatResponse, BrokerError> {
        names::check_syntax("consumer group", &r.group).map_err(|e| BrokerError::BadRequest {
            code: Reason::IllegalConsumerGroup,
            message: e.to_string(),
        })?;
        if r.client_id.is_empty() || r.client_id.len() > 255 {
            return Err(BrokerError::BadRequest {
                code: Reason::ClientIdRequired,
                message: "client_id must be 1-255 characters".into(),
            });
        }
        let members = self.members.beat(&r.group, &r.client_id, r.leaving, std::time::Instant::now());
        Ok(pb::ConsumerHeartbeatResponse { status: Some(ok_status()), members })
    }

    /// Lag of a consumer group on every queue it consumed from, from this node's replicas.
    fn consumer_lag_local(&self, r: pb::ConsumerLagRequest) -> Result<pb::ConsumerLagResponse, BrokerError> {
        if r.group.is_empty() {
            return Err(BrokerError::bad_request("give the consumer group"));
        }
        let mut queues = Vec::new();
        for b in self.brokers.all() {
            let broker = b.group.id().name();
            queues.extend(b.lags(Some(&r.group)).into_iter().map(|l| pb::QueueLag {
                lag: l.lag(),
                topic: l.topic,
                broker_group: broker.clone(),
                queue_id: l.queue,
                min_offset: l.min,
                end_offset: l.end,
                consumed_offset: l.consumed,
                delivered_offset: l.delivered,
                inflight: l.inflight,
            }));
        }
        let known = self.ns.read_local(|s| s.groups.contains_key(&r.group));
        if queues.is_empty() && !known {
            return Err(MetaError::GroupNotFound(r.group).into());
        }
        queues.sort_by(|a, b| (&a.topic, a.queue_id).cmp(&(&b.topic, b.queue_id)));
        Ok(pb::ConsumerLagResponse { status: Some(ok_status()), node_id: self.node_id, queues })
    }

    async fn query_message_local(
        &self,
        r: pb::QueryMessageRequest,
    ) -> Result<pb::QueryMessageResponse, BrokerError> {
        let topic = self
            .ns
            .read_local(|s| s.topics.get(&r.topic).cloned())
            .ok_or_else(|| MetaError::TopicNotFound(r.topic.clone()))?;
        let by_time = r.to_ms > 0;
        if [!r.message_id.is_empty(), !r.key.is_empty(), by_time].iter().filter(|x| **x).count() != 1 {
            return Err(BrokerError::bad_request(
                "give exactly one of: message_id, key, a time range (to_ms > 0)",
            ));
        }
        if by_time && r.from_ms >= r.to_ms {
            return Err(BrokerError::bad_request(format!(
                "the time range is empty: from {} is not before to {}",
                r.from_ms, r.to_ms
            )));
        }
        let max = if r.max == 0 { 32 } else { r.max.min(1024) } as usize;
        let mut groups: Vec<u32> = topic.queues.iter().map(|q| q.group).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut out = Vec::new();
        for g in groups {
            let Some(b) = self.brokers.get(GroupId(g)) else { continue };
            let found = if by_time {
                let queues: Vec<u32> =
                    topic.queues.iter().filter(|q| q.group == g).map(|q| q.queue_id).collect();
                b.in_time_range(&r.topic, &queues, r.from_ms, r.to_ms, max - out.len()).await?
            } else {
                b.find(&r.topic, &r.message_id, &r.key, max).await?
            };
            out.extend(found.into_iter().filter_map(|(queue, m)| {
                let mut s = convert::stored(&r.topic, GroupId(g), queue, &m)?;
                s.consumption = b
                    .consumption(&r.topic, queue, m.offset)
                    .into_iter()
                    .map(|(group, c)| convert::consumption(group, c))
                    .collect();
                Some(s)
            }));
            if out.len() >= max {
                break;
            }
        }
        out.truncate(max);
        Ok(pb::QueryMessageResponse { status: Some(ok_status()), messages: out })
    }
}

#[tonic::async_trait]
impl AdminService for AdminServiceImpl {
    #[tracing::instrument(level = "info", skip_all, fields(group = %req.get_ref().group, to = req.get_ref().to))]
    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.transfer_leader_local(req).await
    }

    #[tracing::instrument(level = "info", skip_all, fields(group = %req.get_ref().group, node = req.get_ref().node_id))]
    async fn change_members(
        &self,
        req: Request<pb::ChangeMembersRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.change_members_local(req).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(topic = %req.get_ref().topic))]
    async fn query_message(
        &self,
        req: Request<pb::QueryMessageRequest>,
    ) -> Result<Response<pb::QueryMessageResponse>, Status> {
        let resp = self.query_message_local(req.into_inner()).await.unwrap_or_else(Answer::error);
        Ok(Response::new(resp))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = %req.get_ref().group))]
    async fn consumer_lag(
        &self,
        req: Request<pb::ConsumerLagRequest>,
    ) -> Result<Response<pb::ConsumerLagResponse>, Status> {
        let resp = self.consumer_lag_local(req.into_inner()).unwrap_or_else(Answer::error);
        Ok(Response::new(resp))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn cluster_status(
        &self,
        _req: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        Ok(Response::new(self.cluster_status_local().await))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(topic = %req.get_ref().name))]
    async fn create_topic(
        &self,
        req: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        self.on_leader(req, |r| self.create_topic_local(r), |mut c, r| async move { c.create_topic(r).await })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(topic = %req.get_ref().name))]
    async fn update_topic(
        &self,
        req: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        self.on_leader(req, |r| self.update_topic_local(r), |mut c, r| async move { c.update_topic(r).await })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(topic = %req.get_ref().name))]
    async fn delete_topic(
        &self,
        req: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.on_leader(req, |r| self.delete_topic_local(r), |mut c, r| async move { c.delete_topic(r).await })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(topic = %req.get_ref().name))]
    async fn describe_topic(
        &self,
        req: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        self.on_leader(
            req,
            |r| self.describe_topic_local(r),
            |mut c, r| async move { c.describe_topic(r).await },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_topics(
        &self,
        req: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        self.on_leader(req, |_| self.list_topics_local(), |mut c, r| async move { c.list_topics(r).await })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = %req.get_ref().name))]
    async fn create_group(
        &self,
        req: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::GroupResponse>, Status> {
        self.on_leader(req, |r| self.create_group_local(r), |mut c, r| async move { c.create_group(r).await })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = %req.get_ref().name))]
    async fn delete_group(
        &self,
        req: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.on_leader(req, |r| self.delete_group_local(r), |mut c, r| async move { c.delete_group(r).await })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = %req.get_ref().name))]
    async fn describe_group(
        &self,
        req: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::GroupResponse>, Status> {
        self.on_leader(
            req,
            |r| self.describe_group_local(r),
            |mut c, r| async move { c.describe_group(r).await },
        )
        .await
    }

    async fn list_clients(
        &self,
        _req: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        Ok(Response::new(self.list_clients_local()))
    }

    async fn announce_remoting(
        &self,
        req: Request<pb::AnnounceRemotingRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.on_leader(
            req,
            |r| self.announce_remoting_local(r),
            |mut c, r| async move { c.announce_remoting(r).await },
        )
        .await
    }

    async fn consumer_heartbeat(
        &self,
        req: Request<pb::ConsumerHeartbeatRequest>,
    ) -> Result<Response<pb::ConsumerHeartbeatResponse>, Status> {
        self.on_leader(
            req,
            |r| self.consumer_heartbeat_local(r),
            |mut c, r| async move { c.consumer_heartbeat(r).await },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list_groups(
        &self,
        req: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        self.on_leader(req, |_| self.list_groups_local(), |mut c, r| async move { c.list_groups(r).await })
            .await
    }
}
