//! Sends messages every way the SDK can: sync, batch, async (future and callback), oneway.
//!
//! ```sh
//! raftmq admin topic create orders --queues 8
//! cargo run -p raftmq-client --example producer -- 127.0.0.1:8081
//! ```

use std::time::Duration;

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoints = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    // One producer per application: it is thread-safe and cheap to clone.
    let producer = Producer::new(ProducerOptions::new(endpoints))?;

    // Sync: returns once a quorum of the broker group stored the message.
    let r = producer.send(Message::new("orders", "order 1").with_tag("created").with_key("order-1")).await?;
    println!("sync: {} at offset {}", r.message_id, r.offset);

    // Batch: one request, one receipt per message.
    let batch = (2..5).map(|i| Message::new("orders", format!("order {i}")).with_tag("created")).collect();
    for r in producer.send_batch(batch).await? {
        println!("batch: {}", r.message_id);
    }

    // Async with a future.
    let pending = producer.send_async(Message::new("orders", "order 5"));
    println!("async: {}", pending.await??.message_id);

    // Async with a callback.
    let (tx, rx) = tokio::sync::oneshot::channel();
    producer.send_with_callback(Message::new("orders", "order 6"), move |result| {
        let _ = tx.send(result.map(|r| r.message_id));
    });
    println!("callback: {}", rx.await??);

    // Oneway: fire and forget (no receipt, no retry).
    producer.send_oneway(Message::new("orders", "heartbeat").with_tag("log"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}
