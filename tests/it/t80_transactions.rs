//! Transactions through the SDK: a half message is invisible until committed, a rollback
//! discards it, an open transaction nobody answers is rolled back after its last check-back, and
//! a commit reaches the new leader after the old one is killed.

use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::SendReceipt;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::START;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;

use crate::node_bin;

/// Bodies received (and acked) within `wait`.
async fn bodies(s: &SimpleConsumer, wait: Duration) -> BTreeSet<String> {
    let until = Instant::now() + wait;
    let mut out = BTreeSet::new();
    while Instant::now() < until {
        for r in s.receive(16, Duration::from_secs(30)).await.unwrap_or_default() {
            out.insert(String::from_utf8_lossy(&r.message.body).to_string());
            let _ = s.ack(&r).await;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_messages_commit_roll_back_and_time_out() {
    let mut c = cluster_with_topic_tuned(node_bin(), "plain", 2, &|c| {
        c.broker.transaction_check_secs = 1;
        c.broker.transaction_checks_max = 2;
    })
    .await;
    raftmq_tests::create_topic(&c, "tx", 4, "TRANSACTION").await;
    create_groups(&c, &["g-tx"]).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-tx");
    o.await_duration = Duration::from_millis(300);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe("tx", Subscription::All);

    let commit = producer.send_half(Message::new("tx", "commit")).await.unwrap();
    let rollback = producer.send_half(Message::new("tx", "rollback")).await.unwrap();
    let open = producer.send_half(Message::new("tx", "open")).await.unwrap();
    let open_sent = Instant::now();
    assert!(commit.transaction_id.contains(&commit.message_id), "{commit:?}");
    // Half messages are invisible.
    assert!(bodies(&s, Duration::from_millis(600)).await.is_empty());

    // A receive long-polling while the commit lands wakes with the message.
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-tx");
    o.await_duration = Duration::from_secs(10);
    let waiting = SimpleConsumer::new(o).unwrap();
    waiting.subscribe("tx", Subscription::All);
    let poll = tokio::spawn(async move {
        let t = Instant::now();
        let mut got = Vec::new();
        while got.is_empty() && t.elapsed() < Duration::from_secs(15) {
            got = waiting.receive(16, Duration::from_secs(30)).await.unwrap_or_default();
        }
        for r in &got {
            waiting.ack(r).await.unwrap();
        }
        (
            got.into_iter().map(|r| String::from_utf8_lossy(&r.message.body).to_string()).collect::<Vec<_>>(),
            t.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    producer.end_transaction("tx", &commit, true).await.unwrap();
    let (got, took) = poll.await.unwrap();
    assert_eq!(got, vec!["commit".to_string()], "after {took:?}");
    producer.end_transaction("tx", &rollback, false).await.unwrap();
    // Ending twice: refused, nothing changes.
    let e = producer.end_transaction("tx", &rollback, true).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidTransactionId), "{e}");
    let forged = SendReceipt { transaction_id: "broker-a:nope".into(), ..commit.clone() };
    let e = producer.end_transaction("tx", &forged, true).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidTransactionId), "{e}");
    assert!(bodies(&s, Duration::from_secs(1)).await.is_empty(), "the commit came twice or a rollback came");

    // Nobody answers the check-backs of the open one (this SDK keeps no Telemetry stream): after
    // two checks a second apart its leader rolls it back.
    let t = Instant::now();
    let rolled_back = |c: &raftmq_tests::TestCluster| {
        (1..=3).any(|n| {
            c.log_tail(n, 400).lines().any(|l| l.contains("rolling back") && l.contains(&open.message_id))
        })
    };
    while !rolled_back(&c) {
        assert!(t.elapsed() < Duration::from_secs(20), "the open transaction was never rolled back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let age = open_sent.elapsed();
    println!("open transaction rolled back {age:?} after its half message (check interval 1 s, 2 checks)");
    assert!(age >= Duration::from_millis(1500), "rolled back before its two checks: {age:?}");
    let e = producer.end_transaction("tx", &open, true).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidTransactionId), "{e}");
    assert!(bodies(&s, Duration::from_millis(600)).await.is_empty(), "a rolled-back message was delivered");

    // Commit across a leader kill of the group holding the half message.
    let across = producer.send_half(Message::new("tx", "across")).await.unwrap();
    let group = across.transaction_id.split(':').next().unwrap().to_string();
    let (leader, _) = c.cluster.wait_leader(&group, None, START).await.unwrap();
    c.cluster.kill(leader).await.unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match producer.end_transaction("tx", &across, true).await {
            Ok(()) => break,
            Err(e) if Instant::now() < until && e.code() != Some(Code::InvalidTransactionId) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("commit after the leader kill: {e}"),
        }
    }
    assert_eq!(bodies(&s, Duration::from_secs(3)).await, BTreeSet::from(["across".to_string()]));
}
