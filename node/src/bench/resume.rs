//! Consumers beside `raftmq bench failover`: a push consumer (its group rebalanced over the
//! queues by the broker, receive/ack) and a pull consumer (our SDK's queue-level consumer, long
//! polling one queue). For each kill: how long after it each delivered a message sent after it —
//! that is when consumption resumed on the new leader.
//!
//! Each body carries the time its send started (µs since the bench began), so a delivery tells
//! which side of the kill its message was sent on.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use raftmq_client::ConsumeResult;
use raftmq_client::OffsetPolicy;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::PushConsumer;
use raftmq_client::PushConsumerOptions;
use raftmq_client::Subscription;
use tokio::task::JoinHandle;

/// Which consumer delivered.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// The push consumer.
    Push,
    /// The pull consumer.
    Pull,
}

/// Deliveries of both consumers: (delivered at, send started at).
pub struct Deliveries {
    epoch: Instant,
    push: Mutex<Vec<(Instant, Instant)>>,
    pull: Mutex<Vec<(Instant, Instant)>>,
}

impl Deliveries {
    /// Deliveries timed from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { epoch: Instant::now(), push: Mutex::default(), pull: Mutex::default() })
    }

    /// The body of send `n` of `topic`, started at `start`.
    pub fn body(&self, topic: &str, n: u64, start: Instant) -> String {
        format!("{topic}:{n}:{}", start.saturating_duration_since(self.epoch).as_micros())
    }

    fn list(&self, via: Via) -> &Mutex<Vec<(Instant, Instant)>> {
        match via {
            Via::Push => &self.push,
            Via::Pull => &self.pull,
        }
    }

    /// Records that `via` delivered `body` now; bodies not made by [`Self::body`] are skipped.
    pub fn record(&self, via: Via, body: &[u8]) {
        let now = Instant::now();
        let sent = std::str::from_utf8(body)
            .ok()
            .and_then(|b| b.rsplit(':').next())
            .and_then(|us| us.parse::<u64>().ok())
            .map(|us| self.epoch + Duration::from_micros(us));
        if let Some(sent) = sent {
            self.list(via).lock().unwrap_or_else(|e| e.into_inner()).push((now, sent));
        }
    }

    /// How long after `t0` `via` first delivered a message whose send started at or after `t0`.
    pub fn resumed(&self, via: Via, t0: Instant) -> Option<Duration> {
        let list = self.list(via).lock().unwrap_or_else(|e| e.into_inner());
        list.iter().filter(|(_, sent)| *sent >= t0).map(|(at, _)| at.saturating_duration_since(t0)).min()
    }
}

/// A push consumer of `topic` in group `group`, recording every delivery.
pub async fn start_push(
    endpoints: &str,
    group: &str,
    topic: &str,
    deliveries: Arc<Deliveries>,
) -> anyhow::Result<PushConsumer> {
    let mut opts = PushConsumerOptions::new(endpoints, group);
    opts.thread_count = 2;
    let listener = Arc::new(move |m: &raftmq_client::MessageView| {
        deliveries.record(Via::Push, &m.body);
        ConsumeResult::Success
    });
    Ok(PushConsumer::start(opts, vec![(topic.to_string(), Subscription::All)], listener).await?)
}

/// A pull consumer long-polling `queue` of `topic` from its end, recording every delivery; it
/// retries failed pulls (the SDK finds the queue's new leader) until aborted.
pub async fn start_pull(
    endpoints: &str,
    group: &str,
    topic: &str,
    queue: u32,
    deliveries: Arc<Deliveries>,
) -> anyhow::Result<JoinHandle<()>> {
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints, group))?;
    let mut offset = consumer.query_offset(topic, queue, OffsetPolicy::End).await?;
    let topic = topic.to_string();
    Ok(tokio::spawn(async move {
        loop {
            match consumer.pull(&topic, queue, offset, 64, Duration::from_secs(1)).await {
                Ok(got) => {
                    for m in &got.messages {
                        deliveries.record(Via::Pull, &m.body);
                    }
                    offset = got.next_offset.max(offset);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "failover bench pull failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;
    use std::time::Instant;

    use super::Deliveries;
    use super::Via;

    #[test]
    fn only_messages_sent_after_the_kill_count() {
        let d = Deliveries::new();
        let before = Instant::now();
        let old = d.body("t", 1, before);
        std::thread::sleep(Duration::from_millis(5));
        let t0 = Instant::now();
        d.record(Via::Pull, old.as_bytes());
        assert_eq!(d.resumed(Via::Pull, t0), None, "a message sent before the kill does not count");
        d.record(Via::Pull, b"not a bench body");
        let new = d.body("t", 2, t0 + Duration::from_millis(1));
        d.record(Via::Pull, new.as_bytes());
        assert!(d.resumed(Via::Pull, t0).is_some());
        assert_eq!(d.resumed(Via::Push, t0), None, "the consumers are kept apart");
    }
}
