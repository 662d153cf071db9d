//! The official RocketMQ 5 Python client (`rocketmq-python-client` 5.1.2) against a 3-node
//! cluster: producer, simple consumer (receive, change invisible duration, ack, redelivery with
//! attempt 2), push consumer, transactions with check-back, delay with recall, FIFO, and a push
//! consumer's failure → retry → dead letter. The
//! scenarios are in
//! `tests/compat/python_compat.py`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use raftmq_client::admin::GroupSpec;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::create_groups;

use crate::node_bin;

fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_produces_and_consumes() {
    // The virtualenv with the official client (created once, then reused).
    let setup = tokio::process::Command::new(compat_dir().join("setup.sh")).output().await.unwrap();
    assert!(setup.status.success(), "python setup failed: {}", String::from_utf8_lossy(&setup.stderr));
    let python = String::from_utf8(setup.stdout).unwrap().trim().to_string();

    let c = cluster_with_topic_tuned(node_bin(), "py-topic", 4, &|c| {
        c.broker.invisible_ms_min = 1000;
        c.broker.transaction_check_secs = 1;
        c.broker.retry_delays_ms = vec![1000, 1000];
    })
    .await;
    // One queue, on one broker: the Python simple consumer long-polls one broker at a time
    // (20 s when it has nothing), so every receive asks where the transactions are.
    for (name, kind) in
        [("py-tx", "TRANSACTION"), ("py-delay", "DELAY"), ("py-fifo", "FIFO"), ("py-retry-topic", "NORMAL")]
    {
        raftmq_tests::create_topic(&c, name, 1, kind).await;
    }
    let fifo = GroupSpec {
        name: "py-fifo-group".into(),
        fifo: true,
        consume_from: "FIRST".into(),
        ..Default::default()
    };
    c.admin(1).create_group(fifo).await.unwrap();
    let retry = GroupSpec {
        name: "py-retry".into(),
        max_delivery_attempts: 2,
        consume_from: "FIRST".into(),
        ..Default::default()
    };
    c.admin(1).create_group(retry).await.unwrap();
    create_groups(&c, &["py-simple", "py-push", "py-tx-group", "py-delay-group"]).await;
    // One access point: given several, the Python client sends them all, comma-joined, as the
    // HTTP/2 `:authority`, which the Rust HTTP/2 server refuses (RST_STREAM PROTOCOL_ERROR). Any
    // node works as the access point: routes name each queue's leader, and nodes forward.
    let eps = c.cluster.node(2).client_addr.clone();
    let run = tokio::process::Command::new(&python)
        .arg(compat_dir().join("python_compat.py"))
        .args([eps.as_str(), "py-topic", "py-simple", "py-push", "py-tx", "py-tx-group"])
        .args(["py-delay", "py-delay-group", "py-fifo", "py-fifo-group"])
        .args(["py-retry-topic", "py-retry"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out =
        tokio::time::timeout(Duration::from_secs(240), run).await.expect("python client timed out").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String =
        stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "python compatibility failed:\n{stdout}\n--- stderr tail ---\n{tail}");
    assert!(stdout.contains("ok all scenarios"), "{stdout}");
    // The message the push consumer failed twice is in the group's dead-letter topic.
    let dead = stdout
        .lines()
        .find_map(|l| l.split("dead letter ").nth(1))
        .expect("no dead letter id")
        .trim()
        .to_string();
    let admin = c.admin(1);
    let found = raftmq_tests::eventually(Duration::from_secs(20), "the dead letter in %DLQ%py-retry", || {
        let (admin, dead) = (admin.clone(), dead.clone());
        async move {
            let ms = admin.messages_in_time_range("%DLQ%py-retry", 0, i64::MAX, 32).await.ok()?;
            ms.into_iter().find(|m| m.message_id == dead)
        }
    })
    .await
    .unwrap();
    assert_eq!(&found.body[..], b"fail-me");
    assert_eq!(found.properties.get("DLQ_ORIGIN_TOPIC").map(String::as_str), Some("py-retry-topic"));
    println!("{stdout}");
}
