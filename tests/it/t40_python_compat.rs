//! The official RocketMQ 5 Python client (`rocketmq-python-client` 5.1.2) against a 3-node
//! cluster: producer, simple consumer (receive, change invisible duration, ack, redelivery with
//! attempt 2), push consumer, transactions with check-back, delay with recall, FIFO, and a push
//! consumer's failure → retry → dead letter. The
//! scenarios are in
//! `tests/compat/python_compat.py`. And the same client across a broker leader kill
//! (`tests/compat/python_failover.py`).

use std::process::Stdio;
use std::time::Duration;

use raftmq_client::admin::GroupSpec;
use raftmq_tests::START;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::compat_dir;
use raftmq_tests::create_groups;
use raftmq_tests::idle_node;
use raftmq_tests::python;
use tokio::io::AsyncBufReadExt;
use tokio::io::AsyncReadExt;
use tokio::io::BufReader;

use crate::node_bin;

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
    // One access point (any node works: routes name each queue's leader, and nodes forward);
    // several are tested across a node's death below.
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
    let mut c = cluster_with_topic(node_bin(), "py-fo", 4).await;
    create_groups(&c, &["py-fo-group"]).await;
    let access = idle_node(&mut c).await;
    let eps = c.cluster.node(access).client_addr.clone();
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    assert_ne!(leader, access);
    failover(&mut c, &eps, leader, false).await;
}

/// The official client given every node as its access point (`a;b;c`, which it sends as one
/// HTTP/2 `:authority` that the node must accept), while the first node, which also leads
/// broker-a, is SIGKILLed: every send is acknowledged (at worst after the client's own retries)
/// and consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_with_every_endpoint_survives_the_first_one_dying() {
    let mut c = cluster_with_topic(node_bin(), "py-all", 4).await;
    create_groups(&c, &["py-all-group"]).await;
    let (first, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    let mut eps = vec![c.cluster.node(first).client_addr.clone()];
    eps.extend(c.cluster.nodes.iter().filter(|n| n.id != first).map(|n| n.client_addr.clone()));
    failover(&mut c, &eps.join(";"), first, true).await;
}

/// Runs `python_failover.py` against `c` with access point `eps`, kills node `victim` when the
/// script is ready, and checks it ends well (`strict`: no send may fail).
async fn failover(c: &mut raftmq_tests::TestCluster, eps: &str, victim: u64, strict: bool) {
    let python = python().await;
    let topic = if strict { "py-all" } else { "py-fo" };
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(compat_dir().join("python_failover.py")).args([eps, topic, &format!("{topic}-group"), "15"]);
    if strict {
        cmd.arg("strict");
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
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
    c.cluster.kill(victim).await.unwrap();
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
