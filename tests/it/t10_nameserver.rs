//! The NameServer on a 3-node cluster of real processes: replicated metadata, leader failover,
//! catch-up after restart (by log and by snapshot), full restart, and refusal of bad input.

use std::time::Duration;
use std::time::Instant;

use raftmq_client::admin::GroupSpec;
use raftmq_client::admin::TopicSpec;
use raftmq_client::proto::rocketmq::Code;
use raftmq_node::config::RawConfig;
use raftmq_tests::TestCluster;
use raftmq_tests::eventually;

use crate::node_bin;

const NS: &str = "nameserver";
const START: Duration = Duration::from_secs(20);
const STOP: Duration = Duration::from_secs(20);

fn topic(name: &str, queues: u32) -> TopicSpec {
    TopicSpec { name: name.into(), queue_count: queues, ..Default::default() }
}

async fn started_with(tune: &dyn Fn(&mut RawConfig)) -> TestCluster {
    let mut c = TestCluster::start_with(node_bin(), 3, 2, tune).expect("start cluster");
    c.cluster.wait_leader(NS, None, START).await.unwrap_or_else(|e| panic!("{e}\n{}", c.log_tail(1, 40)));
    // The leader records the cluster layout right after election; topics need the broker groups.
    let admin = c.admin(1);
    eventually(START, "cluster layout recorded", || {
        let admin = admin.clone();
        async move { admin.create_topic(topic("warmup", 2)).await.ok() }
    })
    .await
    .unwrap();
    // Both broker groups elected and recorded (one queue on each): the routes stop changing, so
    // tests that compare metadata before and after do not see a leader report land in between.
    eventually(START, "broker group leaders recorded", || {
        let admin = admin.clone();
        async move {
            let t = admin.describe_topic("warmup").await.ok()?;
            t.queues.iter().all(|q| q.leader.is_some()).then_some(())
        }
    })
    .await
    .unwrap();
    c
}

async fn started() -> TestCluster {
    started_with(&|_| {}).await
}

async fn topic_names(c: &TestCluster, node: u64) -> Vec<String> {
    let a = c.admin(node);
    eventually(START, "topic list", || {
        let a = a.clone();
        async move { a.list_topics().await.ok().map(|t| t.into_iter().map(|t| t.name).collect::<Vec<_>>()) }
    })
    .await
    .unwrap()
}

/// Waits until node `id`'s replica of the NameServer applied what the leader committed.
async fn caught_up(c: &TestCluster, id: u64) -> raftmq_client::proto::admin::ReplicaStatus {
    let a = c.admin(id);
    eventually(START, "replica catches up", || {
        let a = a.clone();
        async move {
            let s = a.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == NS)?;
            let leader = g.replicas.iter().find(|r| r.role == "leader")?.clone();
            let me = g.replicas.iter().find(|r| r.node_id == id)?.clone();
            (me.role == "follower" && me.applied.is_some() && me.applied >= leader.committed).then_some(me)
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_replicated_and_readable_from_every_node() {
    let mut c = started().await;
    let t = c.admin(2).create_topic(topic("orders", 8)).await.unwrap();
    assert_eq!(t.queues.len(), 8);
    let on_a = t.queues.iter().filter(|q| q.broker_group == "broker-a").count();
    assert_eq!(on_a, 4, "8 queues spread over 2 broker groups");
    c.admin(3).create_group(GroupSpec { name: "billing".into(), ..Default::default() }).await.unwrap();

    for id in 1..=3 {
        let a = c.admin(id);
        assert!(topic_names(&c, id).await.contains(&"orders".to_string()), "node {id}");
        assert_eq!(a.describe_topic("orders").await.unwrap().queues.len(), 8);
        let g = a.describe_group("billing").await.unwrap();
        assert_eq!((g.mode.as_str(), g.max_delivery_attempts), ("CLUSTERING", 17));
    }
    let s = c.cluster.status().await.unwrap();
    let ns = s.groups.iter().find(|g| g.name == NS).unwrap();
    // Once seen with no voters at all in CI (not reproduced): print the whole answer if again.
    assert_eq!(ns.voters.len(), 3, "{s:#?}");
    assert_eq!(ns.replicas.iter().filter(|r| r.role == "leader").count(), 1, "{s:#?}");
    assert_eq!(s.members.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_elects_a_new_leader_within_3s_and_keeps_topics() {
    let mut c = started().await;
    for i in 0..5 {
        c.admin(1).create_topic(topic(&format!("kept-{i}"), 2)).await.unwrap();
    }
    let (old, term) = c.cluster.wait_leader(NS, None, START).await.unwrap();
    let killed_at = Instant::now();
    c.cluster.kill(old).await.unwrap();
    let (new, new_term) = c.cluster.wait_leader(NS, Some(old), Duration::from_secs(3)).await.unwrap();
    eprintln!("new leader {new} (term {new_term}) {:?} after the kill", killed_at.elapsed());
    assert!(new_term > term);
    let survivor = if old == 1 { 2 } else { 1 };
    let names = topic_names(&c, survivor).await;
    for i in 0..5 {
        assert!(names.contains(&format!("kept-{i}")), "{names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_and_full_restart_keeps_everything() {
    let mut c = started().await;
    let (leader, _) = c.cluster.wait_leader(NS, None, START).await.unwrap();
    let victim = if leader == 3 { 2 } else { 3 };
    c.cluster.kill(victim).await.unwrap();
    for i in 0..20 {
        c.admin(leader).create_topic(topic(&format!("while-down-{i}"), 1)).await.unwrap();
    }
    // A data directory of a format this build does not read stops the node with what to do; the
    // directory is left as it was, and once it is readable again the node starts and catches up.
    let format = c.dir().join(format!("node-{victim}")).join("FORMAT");
    let recorded = std::fs::read_to_string(&format).expect("every data directory records its format");
    assert_eq!(recorded, "raftmq-data 2\n");
    std::fs::write(&format, "raftmq-data 99\n").unwrap();
    c.cluster.start(victim).unwrap();
    let deadline = Instant::now() + START;
    let exit = loop {
        if let Some(status) = c.cluster.try_wait(victim).await.unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "a node on a format-99 directory is still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!exit.success());
    let log = c.log_tail(victim, 20);
    assert!(log.contains("data format 99") && log.contains("reads format 2"), "{log}");
    assert_eq!(std::fs::read_to_string(&format).unwrap(), "raftmq-data 99\n");
    std::fs::write(&format, recorded).unwrap();
    c.cluster.start(victim).unwrap();
    caught_up(&c, victim).await;

    for id in 1..=3 {
        c.cluster.stop(id, STOP).await.unwrap();
    }
    c.cluster.start_all().unwrap();
    c.cluster.wait_leader(NS, None, START).await.unwrap();
    let names = topic_names(&c, victim).await;
    for i in 0..20 {
        assert!(names.contains(&format!("while-down-{i}")), "missing while-down-{i}: {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_behind_the_purge_point_catches_up_by_snapshot() {
    // Snapshot every 20 entries and keep 10: a node down for 60 writes finds its log purged.
    let mut c = started_with(&|c| c.raft.nameserver_snapshot_logs = 20).await;
    let (leader, _) = c.cluster.wait_leader(NS, None, START).await.unwrap();
    let victim = if leader == 3 { 2 } else { 3 };
    // The status lists every replica once the leader heard from it.
    let until = Instant::now() + START;
    let victim_last = loop {
        let s = c.cluster.status().await.ok();
        let g = s.and_then(|s| s.groups.into_iter().find(|g| g.name == NS));
        if let Some(last) =
            g.and_then(|g| g.replicas.into_iter().find(|r| r.node_id == victim)?.last_log_index)
        {
            break last;
        }
        assert!(Instant::now() < until, "the status never listed node {victim}'s replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    c.cluster.kill(victim).await.unwrap();
    for i in 0..60 {
        c.admin(leader).create_topic(topic(&format!("snap-{i}"), 1)).await.unwrap();
    }
    let s = c.cluster.status().await.unwrap();
    let g = s.groups.iter().find(|g| g.name == NS).unwrap();
    let leader_replica = g.replicas.iter().find(|r| r.node_id == leader).unwrap();
    assert!(leader_replica.applied.unwrap() > 60, "{leader_replica:?}");

    // Purging follows the snapshot in the background: wait until the leader has dropped the
    // entries the victim lacks, so only a snapshot can bring it back.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = c.cluster.status().await.unwrap();
        let g = s.groups.iter().find(|g| g.name == NS).unwrap();
        let purged = g.replicas.iter().find(|r| r.node_id == leader).and_then(|r| r.purged).unwrap_or(0);
        if purged > victim_last {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "leader purged only to {purged}, victim has {victim_last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.cluster.start(victim).unwrap();
    caught_up(&c, victim).await;
    let names = topic_names(&c, victim).await;
    assert_eq!(names.iter().filter(|n| n.starts_with("snap-")).count(), 60);
    let log = std::fs::read_to_string(c.dir().join(format!("node-{victim}.log"))).unwrap();
    assert!(log.contains("received snapshot"), "the replica caught up by snapshot, not by log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_changes_nothing() {
    let c = started().await;
    let a = c.admin(1);
    a.create_topic(topic("dup", 2)).await.unwrap();
    let before = a.list_topics().await.unwrap();

    let cases: Vec<(TopicSpec, Code, &str)> = vec![
        (topic("dup", 2), Code::BadRequest, "already exists"),
        (topic("bad/name", 2), Code::IllegalTopic, "contains '/'"),
        (topic("", 2), Code::IllegalTopic, "empty"),
        (topic(&"x".repeat(128), 2), Code::IllegalTopic, "limit is 127"),
        (topic("%RETRY%mine", 2), Code::IllegalTopic, "reserved prefix"),
        (topic("many", 5000), Code::BadRequest, "queue count must be 1-1024"),
        (
            TopicSpec { message_type: "SOMETIMES".into(), ..topic("typed", 1) },
            Code::BadRequest,
            "not one of NORMAL",
        ),
    ];
    for (spec, code, msg) in cases {
        let name = spec.name.clone();
        let e = a.create_topic(spec).await.unwrap_err();
        assert_eq!(e.code(), Some(code), "{name}: {e}");
        assert!(e.to_string().contains(msg), "{name}: {e}");
    }
    let e = a.create_group(GroupSpec { name: "a b".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalConsumerGroup), "{e}");
    let e = a.describe_topic("nope").await.unwrap_err();
    assert_eq!(e.code(), Some(Code::TopicNotFound), "{e}");
    let e = c
        .admin(2)
        .update_topic("dup", raftmq_client::admin::TopicChange { queue_count: Some(1), ..Default::default() })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("can only grow"), "{e}");
    assert_eq!(a.list_topics().await.unwrap(), before, "refused requests changed nothing");

    // A bad config is refused before the node starts, with the field to fix.
    let bad = c.dir().join("bad.toml");
    for (text, want) in [
        ("node_id = 1\nbroker_groups = 0\n", "broker_groups must be 1-64"),
        ("node_id = 1\nclinet_addr = \"127.0.0.1:1\"\n", "unknown field"),
        ("node_id = 1\n[raft]\nheartbeat_ms = 0\n", "heartbeat interval must be above 0"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = std::process::Command::new(node_bin())
            .args(["node", "--check", "--config"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{text}: {err}");
    }
}

/// `raftmq admin leader transfer|balance`, with the nodes' own balancing off: leadership moves
/// by hand to the named voter and stays, a transfer to a node that is no voter is refused, and
/// `balance` moves every broker group back to its preferred node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_by_hand_and_balances_back() {
    let mut c = started_with(&|cfg: &mut RawConfig| cfg.broker.balance_leaders = false).await;
    let server = c.cluster.node(1).client_addr.clone();
    let cli = |args: &[&str]| {
        std::process::Command::new(node_bin())
            .args(["admin", "--server", &server, "--json", "leader"])
            .args(args)
            .output()
            .unwrap()
    };
    let json = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    let (ns_leader, _) = c.cluster.wait_leader(NS, None, START).await.unwrap();
    let to = ns_leader % 3 + 1;
    // Right after an election the new leader may not have heard from the target yet, and a node
    // may not know the new leader yet; both refusals say to retry, so do.
    let retrying = |args: Vec<String>| {
        eventually(START, "the leader command accepted", move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = cli(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            let again =
                err.contains("retry once it caught up") || err.contains("no leader is known right now");
            async move { (!again).then_some(out) }
        })
    };
    let out = retrying(vec!["transfer".into(), "--group".into(), NS.into(), "--to".into(), to.to_string()])
        .await
        .unwrap();
    let v = json(out);
    assert_eq!(v["leader"], to, "{v}");
    assert_eq!(c.cluster.wait_leader(NS, None, START).await.unwrap().0, to);

    // Every broker group away from its preferred node, by hand (once each has a leader and its
    // membership reached node 1: `started_with` waits for the NameServer only).
    for g in ["broker-a", "broker-b"] {
        c.cluster.wait_leader(g, None, START).await.unwrap();
    }
    let s = eventually(START, "node 1 knows every broker group's voters", || {
        let admin = c.admin(1);
        async move {
            let s = admin.cluster_status().await.ok()?;
            s.groups.iter().all(|g| g.voters.len() == 3).then_some(s)
        }
    })
    .await
    .unwrap();
    for g in s.groups.iter().filter(|g| g.id != 0) {
        let preferred = raftmq_node::balance::preferred_of(g.id, &g.voters, &[]).unwrap();
        let off = preferred % 3 + 1;
        let args = vec!["transfer".into(), "--group".into(), g.name.clone(), "--to".into(), off.to_string()];
        let v = json(retrying(args).await.unwrap());
        assert_eq!(v["leader"], off, "{v}");
    }
    let v = json(retrying(vec!["balance".into()]).await.unwrap());
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for r in rows {
        assert!(r["outcome"].as_str().unwrap().starts_with("moved"), "{r}");
    }
    let s = c.admin(1).cluster_status().await.unwrap();
    for g in s.groups.iter().filter(|g| g.id != 0) {
        assert_eq!(
            g.leader,
            raftmq_node::balance::preferred_of(g.id, &g.voters, &[]),
            "{} after balance",
            g.name
        );
    }

    let out = cli(&["transfer", "--group", "broker-a", "--to", "9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a voter") && !err.contains("panicked"), "{err}");
}
