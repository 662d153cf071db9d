//! Where a consumer group starts: a group created explicitly receives every message stored after
//! its creation (and none before); a group created on first use follows RocketMQ's rule (the
//! head of a queue never trimmed whose head is still in memory, else the newest message).

use std::collections::BTreeSet;
use std::time::Duration;

use raftmq_client::Message;
use raftmq_client::MessageView;
use raftmq_client::OffsetPolicy;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_client::admin::GroupSpec;
use raftmq_tests::TestCluster;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::endpoints;
use raftmq_tests::receive_n;

use crate::node_bin;

async fn send_n(c: &TestCluster, topic: &str, prefix: &str, n: usize) -> BTreeSet<String> {
    let producer = Producer::new(ProducerOptions::new(endpoints(c))).unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..n {
        ids.insert(producer.send(Message::new(topic, format!("{prefix}{i}"))).await.unwrap().message_id);
    }
    ids
}

/// Every message a new consumer of `group` receives within `wait` (acked as it comes).
async fn received(
    c: &TestCluster,
    group: &str,
    topic: &str,
    want: usize,
    wait: Duration,
) -> Vec<MessageView> {
    let mut o = SimpleConsumerOptions::new(endpoints(c), group);
    o.await_duration = Duration::from_millis(500);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe(topic, Subscription::All);
    let got = receive_n(&s, want, Duration::from_secs(30), wait).await;
    for r in &got {
        s.ack(r).await.unwrap();
    }
    got.into_iter().map(|r| r.message).collect()
}

/// The ids of what [`received`] got.
async fn drain(c: &TestCluster, group: &str, topic: &str, want: usize, wait: Duration) -> BTreeSet<String> {
    received(c, group, topic, want, wait).await.into_iter().map(|m| m.message_id).collect()
}

/// The (queue, offset) of what [`received`] got.
async fn drain_at(
    c: &TestCluster,
    group: &str,
    topic: &str,
    want: usize,
    wait: Duration,
) -> BTreeSet<(u32, u64)> {
    received(c, group, topic, want, wait).await.into_iter().map(|m| (m.queue_id, m.offset)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_created_before_the_messages_receives_every_one_and_none_older() {
    let c = cluster_with_topic(node_bin(), "start", 4).await;
    let admin = c.admin(1);
    // Default `--from`: LAST, i.e. what is stored after the group's creation.
    admin.create_group(GroupSpec { name: "g-early".into(), ..Default::default() }).await.unwrap();
    let first = send_n(&c, "start", "a", 20).await;
    let got = drain(&c, "g-early", "start", 20, Duration::from_secs(20)).await;
    assert_eq!(got, first, "a group created before the sends receives every message sent after it");

    // A group created after those 20: only what comes later.
    admin.create_group(GroupSpec { name: "g-late".into(), ..Default::default() }).await.unwrap();
    let later = send_n(&c, "start", "b", 6).await;
    let got = drain(&c, "g-late", "start", 27, Duration::from_secs(6)).await;
    assert_eq!(got, later, "a group receives nothing stored before its creation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_created_on_first_use_follows_rocketmq_rule() {
    // Hot head (the queues were never trimmed and their messages are in memory): from 0.
    let c = cluster_with_topic(node_bin(), "auto-hot", 4).await;
    let sent = send_n(&c, "auto-hot", "h", 12).await;
    let got = drain(&c, "g-auto-hot", "auto-hot", 12, Duration::from_secs(20)).await;
    assert_eq!(got, sent, "a new group on hot queues starts at their head");
    drop(c);

    // No tail cache: the head is never in memory, so a new group starts at each queue's newest
    // message (RocketMQ's `max - 1`): one message per queue that has any.
    let c = cluster_with_topic_tuned(node_bin(), "auto-cold", 2, &|c| c.broker.tail_cache_mib = 0).await;
    send_n(&c, "auto-cold", "c", 10).await;
    let pull = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "g-auto-cold")).unwrap();
    let mut want = BTreeSet::new();
    for q in 0..2 {
        let end = pull.query_offset("auto-cold", q, OffsetPolicy::End).await.unwrap();
        if end > 0 {
            want.insert((q, end - 1));
        }
    }
    let got = drain_at(&c, "g-auto-cold", "auto-cold", 10, Duration::from_secs(6)).await;
    assert_eq!(got, want, "a new group on cold queues starts at each queue's newest message");
}

/// The official Python, Node.js and Rust 5.x clients against a group created (default `--from`)
/// before they send: each sends, then consumes with that group, and receives every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_receive_everything_sent_after_their_group_was_created() {
    let (python, node_modules) = (raftmq_tests::python().await, raftmq_tests::node_modules().await);
    let rust = raftmq_tests::rust_compat().await;
    let c = cluster_with_topic(node_bin(), "first-hour", 4).await;
    let admin = c.admin(1);
    for g in ["g-python", "g-node", "g-rust"] {
        admin.create_group(GroupSpec { name: g.into(), ..Default::default() }).await.unwrap();
    }
    let access = c.cluster.nodes[0].client_addr.clone();
    let dir = raftmq_tests::compat_dir();
    let mut py = tokio::process::Command::new(&python);
    py.arg(dir.join("python_create_send_consume.py")).args([&access, "first-hour", "g-python", "20"]);
    let out = raftmq_tests::run_compat(py, Duration::from_secs(120), "ok python consumer").await;
    println!("{out}");
    let mut nd = tokio::process::Command::new("node");
    nd.env("NODE_PATH", &node_modules).arg(dir.join("node").join("create_send_consume.js")).args([
        &access,
        "first-hour",
        "g-node",
        "20",
    ]);
    let out = raftmq_tests::run_compat(nd, Duration::from_secs(120), "ok node consumer").await;
    println!("{out}");
    let mut rs = tokio::process::Command::new(&rust);
    rs.args(["v5-create-send-consume", &access, "first-hour", "g-rust", "20"]).env("HOME", c.dir());
    let out = raftmq_tests::run_compat(rs, Duration::from_secs(120), "ok v5-create-send-consume").await;
    println!("{out}");
}
