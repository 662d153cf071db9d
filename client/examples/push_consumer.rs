//! A listener consumes messages on a pool of threads; failures come back later.
//!
//! ```sh
//! cargo run -p raftmq-client --example push_consumer -- 127.0.0.1:8081
//! ```

use std::sync::Arc;
use std::time::Duration;

use raftmq_client::ConsumeResult;
use raftmq_client::MessageView;
use raftmq_client::PushConsumer;
use raftmq_client::PushConsumerOptions;
use raftmq_client::Subscription;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    let mut opts = PushConsumerOptions::new(endpoints, "shipping");
    opts.thread_count = 4;
    opts.max_cached_messages = 256;
    let listener = Arc::new(|m: &MessageView| {
        println!("{} {:?} attempt {}", m.message_id, String::from_utf8_lossy(&m.body), m.delivery_attempt);
        ConsumeResult::Success
    });
    let consumer = PushConsumer::start(opts, vec![("orders".into(), Subscription::All)], listener).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    consumer.shutdown().await;
    Ok(())
}
