//! Reads the queues this consumer owns in its group, committing offsets; rebalances when other
//! consumers of the group start or stop.
//!
//! ```sh
//! cargo run -p raftmq-client --example pull_consumer -- 127.0.0.1:8081
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use raftmq_client::OffsetPolicy;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::Strategy;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints, "audit"))?;
    let assignment = consumer.subscribe("orders", Strategy::Average).await?;
    let mut offsets: BTreeMap<u32, u64> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let mine = assignment.queues().await?;
        // Forget queues another member took over; they continue from our commits.
        offsets.retain(|q, _| mine.contains(q));
        for q in mine {
            let offset = match offsets.get(&q) {
                Some(o) => *o,
                None => consumer.seek_committed("orders", q, OffsetPolicy::Beginning).await?,
            };
            let pulled = consumer.pull("orders", q, offset, 32, Duration::from_millis(200)).await?;
            for m in &pulled.messages {
                println!("queue {q} offset {}: {}", m.offset, String::from_utf8_lossy(&m.body));
            }
            if pulled.next_offset != offset {
                consumer.commit("orders", q, pulled.next_offset).await?;
            }
            offsets.insert(q, pulled.next_offset);
        }
    }
    assignment.leave().await;
    Ok(())
}
