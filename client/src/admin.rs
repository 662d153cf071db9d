//! [`AdminClient`]: cluster status, topics and consumer groups, over raftmq's admin service.
//! The official RocketMQ clients have no admin API; this is what `raftmq admin` uses.

use std::time::Duration;

use raftmq_proto::admin as pb;
use raftmq_proto::admin::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::error::ClientError;
use crate::error::check;

/// What a new topic looks like; zero or empty fields take the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Queues (0: default 8).
    pub queue_count: u32,
    /// NORMAL, FIFO, DELAY, TRANSACTION or MIXED (empty: NORMAL).
    pub message_type: String,
    /// READ, WRITE or READ_WRITE (empty: READ_WRITE).
    pub permission: String,
    /// Retention, seconds (0: default 72 hours).
    pub retention_secs: u64,
}

/// Changes to a topic; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct TopicChange {
    /// New queue count (can only grow).
    pub queue_count: Option<u32>,
    /// New message type.
    pub message_type: Option<String>,
    /// New permission.
    pub permission: Option<String>,
    /// New retention, seconds.
    pub retention_secs: Option<u64>,
}

/// What a new consumer group looks like; zero or empty fields take the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct GroupSpec {
    /// Group name.
    pub name: String,
    /// CLUSTERING or BROADCASTING (empty: CLUSTERING).
    pub mode: String,
    /// Orderly consumption.
    pub fifo: bool,
    /// Delivery attempts before the DLQ (0: default 17).
    pub max_delivery_attempts: u32,
    /// Where the group starts on a queue it never consumed: `LAST` (empty: every message stored
    /// after the group's creation), `FIRST`, `AUTO` (RocketMQ's rule for groups created on first
    /// use), or a time in ms since the epoch.
    pub consume_from: String,
}

/// A connection to one node's admin service. Cheap to clone; share one per application.
#[derive(Clone, Debug)]
pub struct AdminClient {
    inner: AdminServiceClient<Channel>,
    timeout: Duration,
}

impl AdminClient {
    /// Connects to `addr` (`host:port`). Lazily: the first call opens the connection.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Self, ClientError> {
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClientError::InvalidArgument(format!("bad server address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        Ok(Self { inner: AdminServiceClient::new(ep.connect_lazy()), timeout })
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    /// Members and, for every group, each replica's state.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusResponse, ClientError> {
        let r = self.inner.clone().cluster_status(self.req(pb::ClusterStatusRequest {})).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r)
    }

    /// Creates a topic.
    pub async fn create_topic(&self, spec: TopicSpec) -> Result<pb::TopicInfo, ClientError> {
        let req = pb::CreateTopicRequest {
            name: spec.name,
            queue_count: spec.queue_count,
            message_type: spec.message_type,
            permission: spec.permission,
            retention_secs: spec.retention_secs,
        };
        let r = self.inner.clone().create_topic(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        r.topic.ok_or_else(|| ClientError::BadResponse("no topic in answer".into()))
    }

    /// Changes a topic.
    pub async fn update_topic(&self, name: &str, change: TopicChange) -> Result<pb::TopicInfo, ClientError> {
        let req = pb::UpdateTopicRequest {
            name: name.to_string(),
            queue_count: change.queue_count,
            message_type: change.message_type,
            permission: change.permission,
            retention_secs: change.retention_secs,
        };
        let r = self.inner.clone().update_topic(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        r.topic.ok_or_else(|| ClientError::BadResponse("no topic in answer".into()))
    }

    /// Deletes a topic's metadata.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let r = self
            .inner
            .clone()
            .delete_topic(self.req(pb::DeleteTopicRequest { name: name.to_string() }))
            .await?
            .into_inner();
        check(r.status.as_ref())
    }

    /// One topic with its route.
    pub async fn describe_topic(&self, name: &str) -> Result<pb::TopicInfo, ClientError> {
        let r = self
            .inner
            .clone()
            .describe_topic(self.req(pb::DescribeTopicRequest { name: name.to_string() }))
            .await?
            .into_inner();
        check(r.status.as_ref())?;
        r.topic.ok_or_else(|| ClientError::BadResponse("no topic in answer".into()))
    }

    /// Every topic.
    pub async fn list_topics(&self) -> Result<Vec<pb::TopicInfo>, ClientError> {
        let r = self.inner.clone().list_topics(self.req(pb::ListTopicsRequest {})).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r.topics)
    }

    /// Tells the cluster `client_id` is alive in `group` (or, with `leaving`, that it left);
    /// returns the group's live members, sorted.
    pub async fn consumer_heartbeat(
        &self,
        group: &str,
        client_id: &str,
        leaving: bool,
    ) -> Result<Vec<String>, ClientError> {
        let req = pb::ConsumerHeartbeatRequest {
            group: group.to_string(),
            client_id: client_id.to_string(),
            leaving,
        };
        let r = self.inner.clone().consumer_heartbeat(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r.members)
    }

    /// Creates a consumer group.
    pub async fn create_group(&self, spec: GroupSpec) -> Result<pb::GroupInfo, ClientError> {
        let req = pb::CreateGroupRequest {
            name: spec.name,
            mode: spec.mode,
            fifo: spec.fifo,
            max_delivery_attempts: spec.max_delivery_attempts,
            consume_from: spec.consume_from,
        };
        let r = self.inner.clone().create_group(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        r.group.ok_or_else(|| ClientError::BadResponse("no group in answer".into()))
    }

    /// Deletes a consumer group.
    pub async fn delete_group(&self, name: &str) -> Result<(), ClientError> {
        let r = self
            .inner
            .clone()
            .delete_group(self.req(pb::DeleteGroupRequest { name: name.to_string() }))
            .await?
            .into_inner();
        check(r.status.as_ref())
    }

    /// One consumer group.
    pub async fn describe_group(&self, name: &str) -> Result<pb::GroupInfo, ClientError> {
        let r = self
            .inner
            .clone()
            .describe_group(self.req(pb::DescribeGroupRequest { name: name.to_string() }))
            .await?
            .into_inner();
        check(r.status.as_ref())?;
        r.group.ok_or_else(|| ClientError::BadResponse("no group in answer".into()))
    }

    /// Every consumer group.
    pub async fn list_groups(&self) -> Result<Vec<pb::GroupInfo>, ClientError> {
        let r = self.inner.clone().list_groups(self.req(pb::ListGroupsRequest {})).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r.groups)
    }
}

impl AdminClient {
    /// Hands the leadership of `group` (`nameserver`, `broker-a`, ...) to node `to`, which must
    /// be a voter that has caught up.
    pub async fn transfer_leader(&self, group: &str, to: u64) -> Result<(), ClientError> {
        let req = pb::TransferLeaderRequest { group: group.to_string(), to };
        let r = self.inner.clone().transfer_leader(self.req(req)).await?.into_inner();
        check(r.status.as_ref())
    }

    /// Changes node `node_id`'s membership in `group` (`nameserver`, `broker-a`, ...) on that
    /// group's leader. For [`pb::MembershipChange::AddVoter`], `addrs` are the node's (raft,
    /// client) addresses and `catch_up` bounds how long it may take to catch up as a learner
    /// before it becomes a voter; the call waits that long.
    pub async fn change_members(
        &self,
        group: &str,
        change: pb::MembershipChange,
        node_id: u64,
        addrs: Option<(&str, &str)>,
        catch_up: Duration,
    ) -> Result<(), ClientError> {
        let (raft_addr, client_addr) = addrs.unwrap_or_default();
        let req = pb::ChangeMembersRequest {
            group: group.to_string(),
            change: change as i32,
            node_id,
            raft_addr: raft_addr.to_string(),
            client_addr: client_addr.to_string(),
            catch_up_ms: u32::try_from(catch_up.as_millis()).unwrap_or(u32::MAX),
        };
        let mut req = tonic::Request::new(req);
        // The leader waits up to `catch_up` (60 s when zero) and a forwarding node 15 s more.
        let wait = if catch_up.is_zero() { Duration::from_secs(60) } else { catch_up };
        req.set_timeout(wait + Duration::from_secs(30));
        let r = self.inner.clone().change_members(req).await?.into_inner();
        check(r.status.as_ref())
    }

    /// Lag of consumer group `group` on every queue it consumed from, as the answering node's
    /// replicas see it.
    pub async fn consumer_lag(&self, group: &str) -> Result<pb::ConsumerLagResponse, ClientError> {
        let req = pb::ConsumerLagRequest { group: group.to_string() };
        let r = self.inner.clone().consumer_lag(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r)
    }

    /// The RocketMQ 4.x clients connected to the answering node.
    pub async fn list_clients(&self) -> Result<pb::ListClientsResponse, ClientError> {
        let r = self.inner.clone().list_clients(self.req(pb::ListClientsRequest {})).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r)
    }

    /// Messages of `topic` with this message id.
    pub async fn message_by_id(
        &self,
        topic: &str,
        message_id: &str,
    ) -> Result<Vec<pb::StoredMessage>, ClientError> {
        let req = pb::QueryMessageRequest {
            topic: topic.to_string(),
            message_id: message_id.to_string(),
            key: String::new(),
            max: 0,
            ..Default::default()
        };
        let r = self.inner.clone().query_message(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r.messages)
    }

    /// Messages of `topic` with key `key`, at most `max`.
    pub async fn messages_by_key(
        &self,
        topic: &str,
        key: &str,
        max: u32,
    ) -> Result<Vec<pb::StoredMessage>, ClientError> {
        let req = pb::QueryMessageRequest {
            topic: topic.to_string(),
            message_id: String::new(),
            key: key.to_string(),
            max,
            ..Default::default()
        };
        let r = self.inner.clone().query_message(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r.messages)
    }

    /// Messages of `topic` stored in `[from_ms, to_ms)`, at most `max` (0: 32).
    pub async fn messages_in_time_range(
        &self,
        topic: &str,
        from_ms: i64,
        to_ms: i64,
        max: u32,
    ) -> Result<Vec<pb::StoredMessage>, ClientError> {
        let req =
            pb::QueryMessageRequest { topic: topic.to_string(), from_ms, to_ms, max, ..Default::default() };
        let r = self.inner.clone().query_message(self.req(req)).await?.into_inner();
        check(r.status.as_ref())?;
        Ok(r.messages)
    }
}
