//! Retries and dead letters: a message whose delivery failed moves to `%RETRY%<group>` and is
//! delivered again from there (its original topic, id and attempt count shown), while its
//! original queue moves on; after its last attempt it moves to `%DLQ%<group>` (once, with its id
//! and origin kept) and is never delivered to the group again; a consumer can also send one
//! there at once (`ForwardMessageToDeadLetterQueue`). A broker leader dies between the
//! deliveries.

use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::Received;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_client::admin::GroupSpec;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::START;
use raftmq_tests::TestCluster;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;

use crate::node_bin;

const INVISIBLE: Duration = Duration::from_millis(600);

fn consumer(c: &TestCluster, group: &str, topic: &str) -> SimpleConsumer {
    let mut o = SimpleConsumerOptions::new(endpoints(c), group);
    o.await_duration = Duration::from_millis(300);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe(topic, Subscription::All);
    s
}

/// Receives until `n` messages arrived or `timeout` passed.
async fn receive_n(s: &SimpleConsumer, n: usize, timeout: Duration) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        // A receive may fail while a killed leader's group elects a new one; try again.
        out.extend(s.receive(32, INVISIBLE).await.unwrap_or_default());
    }
    out
}

fn ids(r: &[Received]) -> BTreeSet<String> {
    r.iter().map(|r| r.message.message_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_out_of_attempts_move_to_the_dead_letter_topic_once() {
    let mut c = cluster_with_topic_tuned(node_bin(), "dl", 4, &|c| c.broker.invisible_ms_min = 500).await;
    let admin = c.admin(1);
    let spec = GroupSpec {
        name: "g-dl".into(),
        consume_from: "FIRST".into(),
        max_delivery_attempts: 2,
        ..Default::default()
    };
    admin.create_group(spec).await.unwrap();
    create_groups(&c, &["g-manual", "g-dlq-reader"]).await;
    let topics = admin.list_topics().await.unwrap();
    assert!(topics.iter().any(|t| t.name == "%DLQ%g-dl"), "the group comes with its DLQ topic");
    assert!(topics.iter().any(|t| t.name == "%RETRY%g-dl"), "and its retry topic");

    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..6 {
        sent.insert(
            producer
                .send(Message::new("dl", format!("m{i}")).with_key(format!("k{i}")))
                .await
                .unwrap()
                .message_id,
        );
    }

    // Two deliveries, never acked.
    let s = consumer(&c, "g-dl", "dl");
    let first = receive_n(&s, 6, Duration::from_secs(20)).await;
    assert_eq!(ids(&first), sent);
    assert!(first.iter().all(|r| r.message.delivery_attempt == 1));
    // The delivery state lives in the broker groups' logs: a new leader carries on.
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    c.cluster.kill(leader).await.unwrap();
    let second = receive_n(&s, 6, Duration::from_secs(20)).await;
    assert_eq!(ids(&second), sent);
    assert!(second.iter().all(|r| r.message.delivery_attempt == 2 && r.message.topic == "dl"));
    assert!(
        second.iter().all(|r| !r.message.properties.contains_key("RETRY_TOPIC")),
        "a retry shows the user's properties only"
    );
    // The second delivery came from the retry topic: a copy of each, naming the original topic;
    // the original queue moved on (its messages count as consumed by the group).
    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    let admin = c.admin(survivor);
    let retried = admin.messages_in_time_range("%RETRY%g-dl", 0, i64::MAX, 32).await.unwrap();
    assert_eq!(retried.iter().map(|m| m.message_id.clone()).collect::<BTreeSet<_>>(), sent);
    assert_eq!(retried.len(), 6, "one retry copy each");
    assert!(retried.iter().all(|m| m.properties.get("RETRY_TOPIC").map(String::as_str) == Some("dl")));
    for id in &sent {
        let original = admin.message_by_id("dl", id).await.unwrap();
        let state = original[0].consumption.iter().find(|c| c.group == "g-dl").map(|c| c.state.clone());
        assert_eq!(
            state.as_deref(),
            Some("CONSUMED"),
            "{id}: the original queue's progress is not held back"
        );
    }

    // After the second invisible time the messages are dead: the group never sees them again.
    let quiet_until = Instant::now() + INVISIBLE * 3;
    while Instant::now() < quiet_until {
        let more = s.receive(32, INVISIBLE).await.unwrap();
        assert!(more.is_empty(), "delivered a third time: {:?}", more[0].message.delivery_attempt);
    }
    // The old handles are stale.
    let e = s.ack(&second[0]).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidReceiptHandle), "{e}");

    // The DLQ holds each of them once, with the id, body and origin kept.
    let reader = consumer(&c, "g-dlq-reader", "%DLQ%g-dl");
    let dead = receive_n(&reader, 6, Duration::from_secs(20)).await;
    assert_eq!(ids(&dead), sent);
    assert_eq!(dead.len(), 6, "each dead letter once");
    for d in &dead {
        let p = &d.message.properties;
        assert_eq!(p.get("DLQ_ORIGIN_TOPIC").map(String::as_str), Some("dl"), "{p:?}");
        assert_eq!(p.get("RECONSUME_TIME").map(String::as_str), Some("1"), "{p:?}");
        assert!(d.message.body.starts_with(b"m"));
        assert_eq!(d.message.keys.len(), 1);
        reader.ack(d).await.unwrap();
    }

    // The admin CLI lists them and sends them back to their topic, where the group gets them
    // again as new messages.
    let server = c.cluster.node(survivor).client_addr.clone();
    let admin_cli = |args: &[&str]| {
        let out = std::process::Command::new(node_bin())
            .args(["admin", "--server", &server, "--json", "dlq"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let listed = admin_cli(&["list", "g-dl"]);
    let listed: BTreeSet<String> =
        listed.as_array().unwrap().iter().map(|m| m["message_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, sent);
    assert_eq!(admin_cli(&["resend", "g-dl", "--all"]).as_array().unwrap().len(), 6);
    let back = receive_n(&s, 6, Duration::from_secs(20)).await;
    let origins: BTreeSet<String> =
        back.iter().filter_map(|r| r.message.properties.get("DLQ_ORIGIN_MESSAGE_ID").cloned()).collect();
    assert_eq!(origins, sent, "each dead letter came back once");
    assert!(back.iter().all(|r| r.message.delivery_attempt == 1 && r.message.topic == "dl"));
    for r in &back {
        s.ack(r).await.unwrap();
    }

    // A consumer gives up on a message at once.
    let m = consumer(&c, "g-manual", "dl");
    // (The topic now holds the six originals and their six resent copies.)
    let got = receive_n(&m, 12, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 12);
    m.dead_letter(&got[0]).await.unwrap();
    let e = m.dead_letter(&got[0]).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidReceiptHandle), "a second move is refused: {e}");
    for r in &got[1..] {
        m.ack(r).await.unwrap();
    }
    let manual_reader = consumer(&c, "g-dlq-reader", "%DLQ%g-manual");
    let dead = receive_n(&manual_reader, 1, Duration::from_secs(20)).await;
    assert_eq!(ids(&dead), BTreeSet::from([got[0].message.message_id.clone()]));
}
