//! Consumer groups as the consuming RPCs see them: checked names, and creation on first use (what
//! RocketMQ brokers do with `autoCreateSubscriptionGroup`, on by default), through the
//! NameServer's Raft log like any other metadata change.

use std::time::Duration;

use raftmq_proto::admin as admin_pb;
use raftmq_proto::admin::admin_service_client::AdminServiceClient;
use raftmq_proto::rocketmq as pb;
use raftmq_storage::nameserver::ConsumerGroup;
use raftmq_storage::nameserver::GroupSpec;
use raftmq_storage::nameserver::MetaCommand;
use raftmq_storage::nameserver::MetaError;
use raftmq_storage::nameserver::MetaState;
use raftmq_storage::nameserver::names;
use tokio::time::Instant;

use super::context::Context;
use super::context::leader_ok;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::error::Reason;

/// How long new metadata may take to reach this node's NameServer replica.
const VISIBLE_WAIT: Duration = Duration::from_secs(3);

/// The consumer group name of a request, checked.
pub fn group_name(g: Option<&pb::Resource>) -> Result<String, BrokerError> {
    let name = g.map(|r| r.name.clone()).unwrap_or_default();
    names::check_syntax("consumer group", &name).map_err(|e| BrokerError::BadRequest {
        code: Reason::IllegalConsumerGroup,
        message: e.to_string(),
    })?;
    Ok(name)
}

impl Context {
    /// The consumer group `name`; created with the defaults (clustering, 17 delivery attempts,
    /// starting by RocketMQ's rule for new groups) when it does not exist and auto-creation is on.
    pub async fn consumer_group(&self, name: &str) -> Result<ConsumerGroup, BrokerError> {
        if let Some(g) = self.ns.read_local(|s| s.groups.get(name).cloned()) {
            return Ok(g);
        }
        if !self.consumer.auto_create_groups {
            return Err(MetaError::GroupNotFound(name.to_string()).into());
        }
        let created = if self.ns.is_leader() {
            let spec = GroupSpec::with_defaults(name);
            self.ns.propose(MetaCommand::CreateGroup { spec, now_ms: now_ms() }).await.map(|_| ())
        } else {
            self.create_group_on_leader(name).await
        };
        self.created_here(created, &format!("consumer group {name:?}"), |s| s.groups.get(name).cloned()).await
    }

    /// After this node asked the NameServer to create something on a client's behalf (`created`:
    /// the answer; "already exists" means another node was first): the thing, once this node's
    /// NameServer replica has it (within [`VISIBLE_WAIT`]).
    pub async fn created_here<T>(
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

    async fn create_group_on_leader(&self, name: &str) -> Result<(), BrokerError> {
        let (leader, mut admin, req) = self.to_ns_leader(admin_pb::CreateGroupRequest {
            name: name.to_string(),
            consume_from: raftmq_storage::nameserver::ConsumeFrom::Auto.to_text(),
            ..Default::default()
        })?;
        let resp = admin.create_group(req).await.map_err(|s| ns_leader_silent(leader, &s))?.into_inner();
        leader_ok(resp.status)
    }

    /// The admin service of the NameServer leader and `msg` as a request to it (marked
    /// forwarded, with a deadline), for metadata this node creates on a client's behalf.
    pub fn to_ns_leader<T>(
        &self,
        msg: T,
    ) -> Result<(u64, AdminServiceClient<tonic::transport::Channel>, tonic::Request<T>), BrokerError> {
        let (leader, info) = self.ns.leader().ok_or_else(|| {
            BrokerError::Unavailable("the NameServer has no leader right now; retry".into())
        })?;
        let ch = self.channels.get(&info.client_addr).map_err(BrokerError::Internal)?;
        let mut req = tonic::Request::new(msg);
        req.set_timeout(Duration::from_secs(5));
        crate::forward::mark_forwarded(&mut req, self.node_id);
        Ok((leader, AdminServiceClient::new(ch), req))
    }
}

/// The error for a NameServer leader that did not answer.
pub fn ns_leader_silent(leader: u64, s: &tonic::Status) -> BrokerError {
    BrokerError::Unavailable(format!("NameServer leader {leader} did not answer: {}", s.message()))
}
