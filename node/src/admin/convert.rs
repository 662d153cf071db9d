//! NameServer records → admin wire messages.

use raftmq_proto::admin as pb;
use raftmq_storage::GroupId;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::nameserver::ConsumerGroup;
use raftmq_storage::nameserver::MetaState;
use raftmq_storage::nameserver::Topic;

use crate::broker::read::Consumption;

/// A topic with its route; leaders as the NameServer last recorded them.
pub fn topic(state: &MetaState, t: &Topic) -> pb::TopicInfo {
    pb::TopicInfo {
        name: t.name.clone(),
        message_type: t.message_type.as_str().to_string(),
        permission: t.permission.as_str().to_string(),
        retention_secs: t.retention_secs,
        queues: t
            .queues
            .iter()
            .map(|q| {
                let bg = state.broker_group(GroupId(q.group));
                let leader = bg.and_then(|b| b.leader);
                pb::QueueRoute {
                    queue_id: q.queue_id,
                    broker_group: GroupId(q.group).name(),
                    leader,
                    leader_addr: leader
                        .and_then(|l| state.members.get(&l))
                        .map(|m| m.client_addr.clone())
                        .unwrap_or_default(),
                }
            })
            .collect(),
        created_at_ms: t.created_at_ms,
        updated_at_ms: t.updated_at_ms,
    }
}

/// A consumer group.
pub fn group(g: &ConsumerGroup) -> pb::GroupInfo {
    pb::GroupInfo {
        name: g.name.clone(),
        mode: g.mode.as_str().to_string(),
        fifo: g.fifo,
        max_delivery_attempts: g.max_delivery_attempts,
        created_at_ms: g.created_at_ms,
        consume_from: g.consume_from.to_text(),
    }
}

/// A stored message for the admin CLI; `None` if its record does not decode.
pub fn stored(topic: &str, group: GroupId, queue: u32, m: &StoredMessage) -> Option<pb::StoredMessage> {
    let v = RecordView::parse(&m.record).ok()?;
    Some(pb::StoredMessage {
        topic: topic.to_string(),
        broker_group: group.name(),
        queue_id: queue,
        offset: m.offset,
        message_id: v.message_id.to_string(),
        tag: v.tag.map(str::to_string),
        keys: v.keys.iter().map(|k| k.to_string()).collect(),
        born_ms: v.born_ms,
        store_ms: m.store_ms,
        store_host: m.store_host.clone(),
        properties: v.properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: m.record.slice_ref(v.body),
        consumption: Vec::new(),
    })
}

/// A consumer group's state with a message.
pub fn consumption(group: String, c: Consumption) -> pb::Consumption {
    let (state, attempt) = match c {
        Consumption::Consumed => ("CONSUMED", 0),
        Consumption::InFlight(a) => ("IN_FLIGHT", a),
        Consumption::NotConsumed => ("NOT_CONSUMED", 0),
    };
    pb::Consumption { group, state: state.to_string(), attempt }
}
