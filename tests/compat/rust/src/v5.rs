//! The official RocketMQ 5.x Rust client (crates.io `rocketmq` 5.0.0, from apache/rocketmq-clients)
//! against raftmq's gRPC port. One scenario: `v5-create-send-consume`, the first-hour flow of a new
//! user — the group exists before the sends (the caller created it), a producer sends N messages,
//! then a simple consumer of the group receives and acks every one of them.

use std::collections::BTreeSet;
use std::time::Duration;

use rocketmq::Producer;
use rocketmq::SimpleConsumer;
use rocketmq::conf::ClientOption;
use rocketmq::conf::ProducerOption;
use rocketmq::conf::SimpleConsumerOption;
use rocketmq::model::common::FilterExpression;
use rocketmq::model::common::FilterType;
use rocketmq::model::message::MessageBuilder;
use tokio::time::Instant;

/// How long one receive may wait on the server for messages (the client's default is 40 s).
const LONG_POLL: Duration = Duration::from_secs(3);
const INVISIBLE: Duration = Duration::from_secs(30);

/// The client's connection options: plaintext, the given access point, short long polls.
fn client_option(access: &str) -> ClientOption {
    let mut c = ClientOption::default();
    c.set_access_url(access);
    c.set_enable_tls(false);
    c.set_long_polling_timeout(LONG_POLL);
    c
}

/// Sends `n` messages (bodies unique to `run`), then receives and acks with `group` until every
/// sent message id came back once, or `deadline`.
pub async fn create_send_consume(
    access: &str,
    topic: &str,
    group: &str,
    n: usize,
    run: &str,
    deadline: Instant,
) -> Result<String, String> {
    let mut po = ProducerOption::default();
    po.set_topics(vec![topic]);
    let mut producer = Producer::new(po, client_option(access)).map_err(|e| format!("producer: {e:?}"))?;
    producer.start().await.map_err(|e| format!("producer start: {e:?}"))?;
    let mut sent = BTreeSet::new();
    for i in 0..n {
        let m = MessageBuilder::builder()
            .set_topic(topic)
            .set_tag("TagA")
            .set_body(format!("v5-{run}-{i}").into_bytes())
            .build()
            .map_err(|e| format!("message {i}: {e:?}"))?;
        let receipt = producer.send(m).await.map_err(|e| format!("send {i}: {e:?}"))?;
        sent.insert(receipt.message_id().to_string());
    }
    let _ = producer.shutdown().await;

    let mut co = SimpleConsumerOption::default();
    co.set_topics(vec![topic]);
    co.set_consumer_group(group);
    let mut consumer =
        SimpleConsumer::new(co, client_option(access)).map_err(|e| format!("consumer: {e:?}"))?;
    consumer.start().await.map_err(|e| format!("consumer start: {e:?}"))?;
    let filter = FilterExpression::new(FilterType::Tag, "*");
    let mut got = BTreeSet::new();
    let mut errors = Vec::new();
    while !sent.is_subset(&got) && Instant::now() < deadline {
        match consumer.receive_with(topic, &filter, 16, INVISIBLE).await {
            Ok(batch) => {
                for m in batch {
                    if !String::from_utf8_lossy(m.body()).starts_with(&format!("v5-{run}-")) {
                        continue;
                    }
                    got.insert(m.message_id().to_string());
                    consumer.ack(&m).await.map_err(|e| format!("ack {}: {e:?}", m.message_id()))?;
                }
            }
            // An empty long poll is answered as an error by this client; keep polling.
            Err(e) => errors.push(format!("{e:?}")),
        }
    }
    let _ = consumer.shutdown().await;
    let missing: Vec<_> = sent.difference(&got).cloned().collect();
    if !missing.is_empty() {
        let last = errors.last().cloned().unwrap_or_default();
        return Err(format!(
            "{} of {} sent messages never received (e.g. {}); last receive error: {last}",
            missing.len(),
            sent.len(),
            missing[0]
        ));
    }
    Ok(format!("all {} sent messages received and acked", sent.len()))
}
