//! The official RocketMQ 4.x Java client (`org.apache.rocketmq:rocketmq-client` 4.9.8, from Maven
//! Central) against a 3-node cluster's Remoting ports: the quick-start flow (producer, push
//! consumer in clustering mode with a tag filter) and a producer and consumer across a SIGKILL
//! of a broker group's leader. The programs are in `tests/compat/java`.

use std::process::Stdio;
use std::time::Duration;

use raftmq_tests::START;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::java_classpath;
use raftmq_tests::namesrv_addr;
use raftmq_tests::run_compat;
use tokio::io::AsyncBufReadExt;
use tokio::io::BufReader;

use crate::node_bin;

/// `java -cp CLASSPATH raftmq.compat.Compat ARGS`, logging to a directory of its own.
fn java(cp: &str, log_dir: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("java");
    cmd.arg(format!("-Drocketmq.client.logRoot={}", log_dir.display()))
        .arg("-Drocketmq.client.logLevel=WARN")
        .args(["-cp", cp, "raftmq.compat.Compat"])
        .args(args);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_java_4x_client_quickstart_with_a_tag_filter() {
    let cp = java_classpath().await;
    let c = cluster_with_topic(node_bin(), "java-qs", 8).await;
    let ns = namesrv_addr(&c);
    let out = run_compat(
        java(&cp, c.dir(), &["quickstart", &ns, "java-qs", "java-qs-group", "200"]),
        Duration::from_secs(180),
        "ok quickstart",
    )
    .await;
    assert!(out.contains("received all 100 TagA messages"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_java_4x_client_survives_a_leader_kill() {
    let cp = java_classpath().await;
    let mut c = cluster_with_topic(node_bin(), "java-fo", 4).await;
    let ns = namesrv_addr(&c);
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.expect("broker-a has a leader");
    let mut child = java(&cp, c.dir(), &["failover", &ns, "java-fo", "java-fo-group", "15"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run java");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            let done = l == "ready";
            seen.push(l);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(ready, Ok(true)), "the java client never got ready: {seen:?}");
    c.cluster.kill(leader).await.expect("kill broker-a's leader");
    let rest = tokio::time::timeout(Duration::from_secs(150), async {
        let mut out = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            out.push(l);
        }
        out
    })
    .await
    .expect("java client timed out");
    let status = child.wait().await.expect("java exit");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
    assert!(
        status.success() && rest.iter().any(|l| l.starts_with("ok failover")),
        "{rest:?}\n--- stderr tail ---\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_java_4x_client_transactions_with_check_back() {
    let cp = java_classpath().await;
    let c = raftmq_tests::cluster_with_topic_tuned(node_bin(), "java-tx", 4, &|c| {
        c.broker.transaction_check_secs = 1;
    })
    .await;
    let ns = namesrv_addr(&c);
    let out = run_compat(
        java(&cp, c.dir(), &["transaction", &ns, "java-tx", "java-tx-group"]),
        Duration::from_secs(180),
        "ok transaction",
    )
    .await;
    assert!(out.contains("consumed [commit-now, commit-on-check]"), "{out}");
}
