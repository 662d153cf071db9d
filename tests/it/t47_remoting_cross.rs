//! One broker, two protocols: messages sent with the official 4.x Java client (Remoting) are
//! received by the official 5.x Python client (gRPC) with the same ids, tags, keys and
//! properties, and the other way; offsets a 4.x consumer commits are the group's offsets a 5.x
//! pull consumer reads.

use std::collections::BTreeMap;
use std::time::Duration;

use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::compat_dir;
use raftmq_tests::endpoints;
use raftmq_tests::java_classpath;
use raftmq_tests::namesrv_addr;
use raftmq_tests::python;
use raftmq_tests::run_compat;

use crate::node_bin;

/// `id MSGID BODY ...` lines of a compat program's output, by body.
fn ids(out: &str) -> BTreeMap<String, Vec<String>> {
    out.lines()
        .filter_map(|l| l.strip_prefix("id "))
        .map(|l| {
            let parts: Vec<String> = l.split(' ').map(str::to_string).collect();
            (parts.get(1).cloned().unwrap_or_default(), parts)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_offsets_cross_between_4x_and_5x_clients() {
    let (cp, python) = (java_classpath().await, python().await);
    let c = cluster_with_topic(node_bin(), "cross-t", 4).await;
    let ns = namesrv_addr(&c);
    let eps = c.cluster.nodes.iter().map(|n| n.client_addr.clone()).collect::<Vec<_>>().join(";");
    let log_dir = format!("-Drocketmq.client.logRoot={}", c.dir().display());
    let java = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("java");
        cmd.arg(&log_dir).args(["-cp", &cp, "raftmq.compat.Compat"]).args(args);
        cmd
    };
    let py = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(compat_dir().join("python_cross.py")).args(args);
        cmd
    };
    let wait = Duration::from_secs(180);

    // 4.x → 5.x: same id, tag, keys and user property.
    let sent = run_compat(java(&["produce", &ns, "cross-t", "cross-p4", "20"]), wait, "ok produce").await;
    let got = run_compat(py(&["receive", &eps, "cross-t", "cross-g5", "20"]), wait, "ok receive").await;
    let (sent, got) = (ids(&sent), ids(&got));
    assert_eq!(sent.len(), 20);
    for (body, s) in &sent {
        let g = got.get(body).unwrap_or_else(|| panic!("{body} never reached the 5.x client"));
        assert_eq!(g[0], s[0], "{body}: one message, one id in both protocols");
        assert_eq!(&g[2..], ["x".to_string(), format!("k-{}", &body[5..]), "java".to_string()], "{body}");
    }

    // 5.x → 4.x: the 4.x consumer sees the 5.x message id and tag.
    let sent = run_compat(py(&["send", &eps, "cross-t", "20"]), wait, "ok send").await;
    let got = run_compat(java(&["consume", &ns, "cross-t", "cross-g4", "20"]), wait, "ok consume").await;
    let (sent, got) = (ids(&sent), ids(&got));
    assert_eq!(sent.len(), 20);
    for (body, s) in &sent {
        let g = got.get(body).unwrap_or_else(|| panic!("{body} never reached the 4.x client"));
        assert_eq!(g[0], s[0], "{body}: one message, one id in both protocols");
        assert_eq!(g[2], "py", "{body}");
    }

    // The 4.x consumer committed its progress (on shutdown): a 5.x pull consumer of the same
    // group reads those offsets, at the end of every queue.
    let pull = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "cross-g4")).unwrap();
    let queues = pull.queues("cross-t").await.unwrap();
    assert_eq!(queues.len(), 4);
    let mut total = 0;
    for q in queues {
        let committed = pull.committed("cross-t", q).await.unwrap();
        let end = pull.query_offset("cross-t", q, raftmq_client::OffsetPolicy::End).await.unwrap();
        assert_eq!(committed, Some(end), "queue {q}: the 4.x consumer's offset is the group's");
        total += end;
    }
    assert_eq!(total, 40, "20 messages each way");
}
