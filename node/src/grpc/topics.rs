//! Topics as producers see them: created on first use when `[broker] auto_create_topics` is on
//! (RocketMQ's `autoCreateTopicEnable`; off by default, so a typo in a topic name is an error,
//! not a new topic), through the NameServer's Raft log like any other metadata change.

use raftmq_proto::admin as admin_pb;
use raftmq_storage::nameserver::DEFAULT_QUEUE_COUNT;
use raftmq_storage::nameserver::DEFAULT_RETENTION_SECS;
use raftmq_storage::nameserver::MessageType;
use raftmq_storage::nameserver::MetaCommand;
use raftmq_storage::nameserver::MetaError;
use raftmq_storage::nameserver::Permission;
use raftmq_storage::nameserver::Topic;
use raftmq_storage::nameserver::TopicSpec;
use raftmq_storage::nameserver::names;

use super::context::Context;
use super::context::leader_ok;
use super::groups::ns_leader_silent;
use crate::clock::now_ms;
use crate::error::BrokerError;

impl Context {
    /// Topic `name` for a producer: created (MIXED, the default queue count) when it does not
    /// exist and auto-creation is on; TOPIC_NOT_FOUND otherwise.
    pub async fn producer_topic(&self, name: &str) -> Result<Topic, BrokerError> {
        match self.topic(name).await {
            Err(BrokerError::NotFound { .. }) if self.consumer.auto_create_topics => {}
            other => return other,
        }
        names::check_topic(name).map_err(MetaError::Name)?;
        let created = if self.ns.is_leader() {
            let spec = TopicSpec {
                name: name.to_string(),
                queue_count: DEFAULT_QUEUE_COUNT,
                message_type: MessageType::Mixed,
                permission: Permission::ReadWrite,
                retention_secs: DEFAULT_RETENTION_SECS,
                system: false,
            };
            self.ns.propose(MetaCommand::CreateTopic { spec, now_ms: now_ms() }).await.map(|_| ())
        } else {
            let msg = admin_pb::CreateTopicRequest {
                name: name.to_string(),
                message_type: "MIXED".into(),
                ..Default::default()
            };
            let (leader, mut admin, req) = self.to_ns_leader(msg)?;
            let resp = admin.create_topic(req).await.map_err(|s| ns_leader_silent(leader, &s))?.into_inner();
            leader_ok(resp.status)
        };
        self.created_here(created, &format!("topic {name:?}"), |s| s.topics.get(name).cloned()).await
    }
}
