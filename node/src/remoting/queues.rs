//! The 4.x view of a topic's queues. A 4.x client numbers the queues of each broker from 0
//! (`MessageQueue(topic, brokerName, queueId)`); raftmq numbers a topic's queues across its broker
//! groups. Queue *i* of broker `broker-a` is the *i*-th of the topic's queues stored by that group,
//! in queue-id order: the same queue, and the same offsets, that the gRPC clients see.

use raftmq_storage::GroupId;
use raftmq_storage::nameserver::Topic;

use super::context::Remoting;
use crate::error::BrokerError;

/// The topic's queue ids stored by broker group `g`, in order; a 4.x queue id is an index here.
pub fn broker_queues(topic: &Topic, g: GroupId) -> Vec<u32> {
    topic.queues.iter().filter(|q| q.group == g.0).map(|q| q.queue_id).collect()
}

/// The broker groups storing some queue of `topic`, in id order.
pub fn broker_groups(topic: &Topic) -> Vec<GroupId> {
    let mut gs: Vec<GroupId> = topic.queues.iter().map(|q| GroupId(q.group)).collect();
    gs.sort();
    gs.dedup();
    gs
}

/// The 4.x queue id of queue `global` of `topic` (its index among its broker group's queues).
pub fn local_id(topic: &Topic, global: u32) -> i32 {
    let Some(q) = topic.queues.get(global as usize) else { return -1 };
    topic.queues[..global as usize].iter().filter(|o| o.group == q.group).count() as i32
}

impl Remoting {
    /// The broker group named `name` (`broker-a`, ...).
    pub fn group_named(&self, name: &str) -> Option<GroupId> {
        self.ns.read_local(|s| s.broker_groups.values().find(|g| g.name == name).map(|g| GroupId(g.id)))
    }

    /// The broker group and queue a 4.x request means by queue `queue` of `topic`: on broker
    /// `bname` when the client names it (Java 4.9.x clients do, in every queue request); else
    /// the only group that has such a queue, or the only such group this node leads.
    pub fn queue_target(
        &self,
        topic: &Topic,
        bname: Option<&str>,
        queue: i32,
    ) -> Result<(GroupId, u32), BrokerError> {
        let on =
            |g: GroupId| usize::try_from(queue).ok().and_then(|i| broker_queues(topic, g).get(i).copied());
        if let Some(name) = bname {
            let g = self
                .group_named(name)
                .ok_or_else(|| BrokerError::bad_request(format!("there is no broker named {name:?}")))?;
            return on(g).map(|q| (g, q)).ok_or_else(|| {
                BrokerError::bad_request(format!(
                    "topic {:?} has no queue {queue} on broker {name}",
                    topic.name
                ))
            });
        }
        let candidates: Vec<(GroupId, u32)> =
            broker_groups(topic).into_iter().filter_map(|g| on(g).map(|q| (g, q))).collect();
        if let [one] = candidates.as_slice() {
            return Ok(*one);
        }
        let led: Vec<(GroupId, u32)> =
            candidates.iter().copied().filter(|(g, _)| self.local_leader(*g).is_some()).collect();
        match led.as_slice() {
            [one] => Ok(*one),
            _ if candidates.is_empty() => Err(BrokerError::bad_request(format!(
                "topic {:?} has no queue {queue} on any broker",
                topic.name
            ))),
            _ => Err(BrokerError::bad_request(format!(
                "queue {queue} of topic {:?} is on several brokers; the request must name one (bname)",
                topic.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use raftmq_storage::nameserver::MessageType;
    use raftmq_storage::nameserver::Permission;
    use raftmq_storage::nameserver::QueueRoute;

    use super::*;

    #[test]
    fn queues_numbered_per_broker() {
        let topic = Topic {
            name: "t".into(),
            message_type: MessageType::Normal,
            permission: Permission::ReadWrite,
            retention_secs: 1,
            queues: [1, 2, 1, 2, 1]
                .iter()
                .enumerate()
                .map(|(i, g)| QueueRoute { queue_id: i as u32, group: *g })
                .collect(),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        assert_eq!(broker_queues(&topic, GroupId(1)), vec![0, 2, 4]);
        assert_eq!(broker_queues(&topic, GroupId(2)), vec![1, 3]);
        assert_eq!(broker_groups(&topic), vec![GroupId(1), GroupId(2)]);
        for (global, local) in [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2)] {
            assert_eq!(local_id(&topic, global), local);
        }
        assert_eq!(local_id(&topic, 9), -1);
    }
}
