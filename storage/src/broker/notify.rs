//! Per-queue "readable end" watches: apply publishes after its write batch is in RocksDB, and
//! long-polling readers wait on them instead of polling on a timer.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// The readable end offset of every queue of a broker group.
#[derive(Debug, Default)]
pub struct QueueNotifier {
    queues: Mutex<HashMap<(String, u32), watch::Sender<u64>>>,
}

impl QueueNotifier {
    /// Publishes that offsets below `end` of `(topic, queue)` can be read.
    pub fn publish(&self, topic: &str, queue: u32, end: u64) {
        let mut m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(&(topic.to_string(), queue)) {
            Some(tx) => {
                tx.send_if_modified(|cur| {
                    let changed = *cur != end;
                    *cur = end;
                    changed
                });
            }
            None => {
                m.insert((topic.to_string(), queue), watch::Sender::new(end));
            }
        }
    }

    /// A receiver of `(topic, queue)`'s readable end (0 until its first message).
    pub fn subscribe(&self, topic: &str, queue: u32) -> watch::Receiver<u64> {
        let mut m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((topic.to_string(), queue)).or_insert_with(|| watch::Sender::new(0)).subscribe()
    }

    /// The readable end of `(topic, queue)` now.
    pub fn end(&self, topic: &str, queue: u32) -> u64 {
        let m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&(topic.to_string(), queue)).map_or(0, |tx| *tx.borrow())
    }

    /// Forgets every queue (after a snapshot replaced the state); readers see the new ends.
    pub fn reset(&self, ends: impl IntoIterator<Item = ((String, u32), u64)>) {
        for ((topic, queue), end) in ends {
            let mut m = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(&(topic.clone(), queue)) {
                Some(tx) => {
                    tx.send_replace(end);
                }
                None => {
                    m.insert((topic, queue), watch::Sender::new(end));
                }
            }
        }
    }
}
