//! Messages and bytes through each queue of a broker group on this node: stored by sends this
//! node led, and handed out by pulls and receives it served. Counters only grow; Prometheus
//! turns them into rates.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueTraffic {
    /// Messages stored.
    pub put_messages: u64,
    /// Body bytes stored.
    pub put_bytes: u64,
    /// Messages handed out to consumers.
    pub get_messages: u64,
    /// Body bytes handed out to consumers.
    pub get_bytes: u64,
}

/// Which way messages went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Stored by a send.
    Put,
    /// Handed out by a pull or a receive.
    Get,
}

/// Per-queue counters of one broker group, by topic and queue.
#[derive(Debug, Default)]
pub struct Traffic {
    topics: Mutex<BTreeMap<String, BTreeMap<u32, QueueTraffic>>>,
}

impl Traffic {
    /// Counts messages of `topic`; `items` gives each one's queue and body size.
    pub fn count(&self, dir: Direction, topic: &str, items: impl IntoIterator<Item = (u32, usize)>) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        for (queue, bytes) in items {
            bump(&mut topics, dir, topic, queue, 1, bytes);
        }
    }

    /// Counts `messages` messages of one queue with `bytes` body bytes in all.
    pub fn add(&self, dir: Direction, topic: &str, queue: u32, messages: usize, bytes: usize) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        bump(&mut topics, dir, topic, queue, messages, bytes);
    }

    /// Every queue's counts, by (topic, queue).
    pub fn snapshot(&self) -> Vec<((String, u32), QueueTraffic)> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.iter().flat_map(|(topic, qs)| qs.iter().map(|(q, t)| ((topic.clone(), *q), *t))).collect()
    }
}

fn bump(
    topics: &mut BTreeMap<String, BTreeMap<u32, QueueTraffic>>,
    dir: Direction,
    topic: &str,
    queue: u32,
    n: usize,
    bytes: usize,
) {
    // Look up by `&str` first: a topic's name is allocated once, on its first count.
    let queues = match topics.get_mut(topic) {
        Some(q) => q,
        None => topics.entry(topic.to_string()).or_default(),
    };
    let t = queues.entry(queue).or_default();
    let (messages, total) = match dir {
        Direction::Put => (&mut t.put_messages, &mut t.put_bytes),
        Direction::Get => (&mut t.get_messages, &mut t.get_bytes),
    };
    *messages += n as u64;
    *total += bytes as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_and_gets_count_per_queue() {
        let t = Traffic::default();
        t.count(Direction::Put, "a", [(0, 10), (0, 5), (1, 7)]);
        t.add(Direction::Get, "a", 0, 1, 10);
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            (
                ("a".to_string(), 0),
                QueueTraffic { put_messages: 2, put_bytes: 15, get_messages: 1, get_bytes: 10 }
            )
        );
        assert_eq!(s[1].1.put_bytes, 7);
    }
}
