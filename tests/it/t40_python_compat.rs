//! The official RocketMQ 5 Python client (`rocketmq-python-client` 5.1.2) against a 3-node
//! cluster: producer, simple consumer (receive, change invisible duration, ack, redelivery with
//! attempt 2), push consumer, transactions with check-back, delay with recall, FIFO, and a push
//! consumer's failure → retry → dead letter. The
//! scenarios are in
//! `tests/compat/python_compat.py`. And the same client across a broker leader kill
//! (`tests/compat/python_failover.py`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use raftmq_client::admin::GroupSpec;
use raftmq_tests::START;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::create_groups;
use raftmq_tests::idle_node;
use tokio::io::AsyncBufReadExt;
use tokio::io::AsyncReadExt;
use tokio::io::BufReader;

use crate::node_bin;

fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat")
}

/// The python of the virtualenv with the official client (created once, then reused).
async fn python() -> String {
    let setup = tokio::process::Command::new(compat_dir().join("setup.sh")).output().await.unwrap();
    assert!(setup.status.success(), "python setup failed: {}", String::from_utf8_lossy(&setup.stderr));
    String::from_utf8(setup.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_produces_and_consumes() {
    let python = python().await;

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

/// The official client's producer and push consumer, pointed at a node that leads no broker
/// group, while the leader of broker-a is killed: the push consumer re-queries its assignment and
/// keeps consuming, and every acknowledged message reaches the listener (a send that failed after
/// the client's own retries has an unknown outcome and is not counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_follows_a_leader_kill() {
    let python = python().await;
    let mut c = cluster_with_topic(node_bin(), "py-fo", 4).await;
    create_groups(&c, &["py-fo-group"]).await;
    let access = idle_node(&mut c).await;
    let eps = c.cluster.node(access).client_addr.clone();
    let mut child = tokio::process::Command::new(&python)
        .arg(compat_dir().join("python_failover.py"))
        .args([eps.as_str(), "py-fo", "py-fo-group", "15"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let ready = line == "ready";
            out.push(line);
            if ready {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the script never got ready: {out:?}");
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    assert_ne!(leader, access);
    c.cluster.kill(leader).await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(150), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push(line);
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("python failover script timed out");
    let stderr = errors.await.unwrap();
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    let out = out.join("\n");
    assert!(
        rest.success() && out.contains("ok failover"),
        "{out}\n--- stderr tail (newest first) ---\n{tail:?}"
    );
    println!("{out}");
}
