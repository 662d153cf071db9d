//! Small builders of wire types that every request of the SDK needs.

use std::time::Duration;

use raftmq_proto::rocketmq as pb;

/// A resource (topic or group) in the default namespace.
pub(crate) fn resource(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource { resource_namespace: String::new(), name: name.to_string() })
}

/// Queue `id` of `topic` on broker group `broker` (`id` -1: the whole broker group).
pub(crate) fn queue(topic: &str, id: i32, broker: &str) -> pb::MessageQueue {
    pb::MessageQueue {
        topic: resource(topic),
        id,
        permission: pb::Permission::ReadWrite as i32,
        broker: Some(pb::Broker { name: broker.to_string(), id: 0, endpoints: None }),
        accept_message_types: Vec::new(),
    }
}

/// A protobuf duration.
pub(crate) fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}
