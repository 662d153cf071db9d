//! Receives messages, acks them, and postpones one it cannot handle yet.
//!
//! ```sh
//! raftmq admin group create billing --from first
//! cargo run -p raftmq-client --example simple_consumer -- 127.0.0.1:8081
//! ```

use std::time::Duration;

use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    let mut opts = SimpleConsumerOptions::new(endpoints, "billing");
    opts.await_duration = Duration::from_secs(2);
    let consumer = SimpleConsumer::new(opts)?;
    consumer.subscribe("orders", Subscription::Tags("created".into()));

    let mut idle = 0;
    while idle < 3 {
        // Received messages stay invisible to the rest of the group for 30 s.
        let batch = consumer.receive(16, Duration::from_secs(30)).await?;
        idle = if batch.is_empty() { idle + 1 } else { 0 };
        for r in batch {
            let body = String::from_utf8_lossy(&r.message.body);
            if body.ends_with('3') && r.message.delivery_attempt == 1 {
                // Not now: let it come back in 10 s (with delivery_attempt 2).
                consumer.change_invisible_duration(&r, Duration::from_secs(10)).await?;
                println!("postponed {body}");
                continue;
            }
            println!("consumed {body} (attempt {})", r.message.delivery_attempt);
            consumer.ack(&r).await?;
        }
    }
    Ok(())
}
