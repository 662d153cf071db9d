//! Consumer lag: where each consumer group is on each queue of a broker group, as this node's
//! replica sees it. `/metrics` and `raftmq admin group lag` both read it from here.

use std::collections::BTreeMap;

use super::BrokerGroup;

/// Where one consumer group is on one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLag {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue: u32,
    /// Lowest offset still stored.
    pub min: u64,
    /// Offset the next message gets.
    pub end: u64,
    /// Every offset below it is consumed: the committed offset, or for receive/ack consumers
    /// the lowest offset not yet acked.
    pub consumed: u64,
    /// Offset of the next message never handed out (receive/ack consumers; `consumed` for
    /// consumers that commit offsets).
    pub delivered: u64,
    /// Messages handed out and not acked yet (receive/ack consumers only).
    pub inflight: u64,
}

impl QueueLag {
    /// Messages of the queue the group has not consumed yet and can still get: never handed out
    /// (and not removed by retention), or handed out and not acked.
    pub fn lag(&self) -> u64 {
        self.end.saturating_sub(self.delivered.max(self.min)) + self.inflight
    }
}

impl BrokerGroup {
    /// Lag of every consumer group on every queue it consumed from (or only of `group`), sorted
    /// by group, topic and queue. A group that both commits offsets and receives on a queue is
    /// shown by its receive/ack state, as `raftmq admin message` shows it.
    pub fn lags(&self, group: Option<&str>) -> Vec<QueueLag> {
        let wanted = |g: &str| group.is_none_or(|w| w == g);
        self.data.read(|s| {
            let names = s.topic_names();
            let mut out: BTreeMap<(&str, &str, u32), QueueLag> = BTreeMap::new();
            let committed = s.consumers.iter().map(|(k, o)| (k, *o, *o, 0));
            let popped =
                s.pops.queues.iter().map(|(k, p)| (k, p.committed(), p.cursor, p.inflight.len() as u64));
            for ((g, tid, queue), consumed, delivered, inflight) in committed.chain(popped) {
                let Some(topic) = names.get(tid) else { continue };
                if !wanted(g) {
                    continue;
                }
                let q = s.queues.get(&(*tid, *queue)).copied().unwrap_or_default();
                let lag = QueueLag {
                    group: g.clone(),
                    topic: topic.to_string(),
                    queue: *queue,
                    min: q.min,
                    end: q.next,
                    consumed,
                    delivered,
                    inflight,
                };
                out.insert((g.as_str(), topic, *queue), lag);
            }
            out.into_values().collect()
        })
    }
}
