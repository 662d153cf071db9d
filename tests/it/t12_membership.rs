//! Cluster membership on a live cluster under load: a node replaced by a new one (add, then
//! remove), refusals that protect the quorum and the id rule, leader balance onto the new node,
//! and a rolling restart whose stopping leaders hand over before they exit.

use std::time::Duration;
use std::time::Instant;

use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_node::admin::leader::LeaderCommand;
use raftmq_node::admin::node::NewNode;
use raftmq_node::admin::node::NodeCommand;
use raftmq_node::balance::preferred_of;
use raftmq_tests::START;
use raftmq_tests::TestCluster;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::create_topic;
use raftmq_tests::eventually;

use crate::node_bin;
use crate::t20_commitlog::Load;
use crate::t20_commitlog::assert_all_stored;

fn endpoints_of(c: &TestCluster, ids: &[u64]) -> String {
    ids.iter().map(|id| c.cluster.node(*id).client_addr.clone()).collect::<Vec<_>>().join(";")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_replaced_under_load_and_takes_its_share_of_leaders() {
    let mut c = TestCluster::start(node_bin(), 3, 3).unwrap();
    for g in ["nameserver", "broker-a", "broker-b", "broker-c"] {
        c.cluster.wait_leader(g, None, START).await.unwrap();
    }
    c.cluster.wait_balanced(START).await.unwrap();
    create_topic(&c, "members", 6, "NORMAL").await;
    let producer = Producer::new(ProducerOptions::new(endpoints_of(&c, &[1, 2, 3]))).unwrap();
    let load = Load::start(&producer, "members");
    let admin = c.admin(2);

    // Refused: a group of 2 voters stops on one more failure.
    let err = raftmq_node::admin::node::run(&admin, NodeCommand::Remove { id: 3, force: false }, false)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("would leave"), "{err:#}");

    let new = c.start_extra_node().unwrap();
    let (raft_addr, client_addr) =
        (c.cluster.node(new).raft_addr.clone(), c.cluster.node(new).client_addr.clone());
    // Node 1 leads broker-a (its preferred group): the removal must move that leadership.
    assert_eq!(c.cluster.wait_leader("broker-a", None, START).await.unwrap().0, 1);
    let started = Instant::now();
    let replace =
        NodeCommand::Replace { old: 1, new, node: NewNode { raft_addr, client_addr, catch_up: 60 } };
    let out = raftmq_node::admin::node::run(&admin, replace, false).await.unwrap();
    eprintln!("replace took {:?}:\n{out}", started.elapsed());
    for g in ["nameserver", "broker-a", "broker-b", "broker-c"] {
        assert!(out.lines().any(|l| l.starts_with(g) && l.contains(&format!("node {new} added"))), "{out}");
        assert!(out.lines().any(|l| l.starts_with(g) && l.contains("node 1 removed")), "{out}");
    }
    assert!(out.lines().any(|l| l.starts_with("broker-a") && l.contains("leadership moved")), "{out}");

    // Every group now votes {2, 3, new}; node 1 is retired and forgotten.
    let s = eventually(Duration::from_secs(10), "the new membership everywhere", || {
        let admin = admin.clone();
        async move {
            let s = admin.cluster_status().await.ok()?;
            let settled = s.groups.iter().all(|g| g.voters == vec![2, 3, new] && g.learners.is_empty())
                && s.members.iter().all(|m| m.id != 1);
            settled.then_some(s)
        }
    })
    .await
    .unwrap();
    assert_eq!(s.retired, vec![1]);
    assert!(s.groups.iter().all(|g| g.leader != Some(1)));

    // The old id is never given out again.
    let (ra, ca) = (c.cluster.node(1).raft_addr.clone(), c.cluster.node(1).client_addr.clone());
    let again = NodeCommand::Add { id: 1, node: NewNode { raft_addr: ra, client_addr: ca, catch_up: 5 } };
    let err = raftmq_node::admin::node::run(&admin, again, false).await.unwrap_err();
    assert!(format!("{err:#}").contains("never reused"), "{err:#}");
    c.cluster.stop(1, Duration::from_secs(20)).await.unwrap();

    // Balance puts each broker group on its preferred voter: the new node leads one.
    let out = raftmq_node::admin::leader::run(&admin, LeaderCommand::Balance, false).await.unwrap();
    eprintln!("{out}");
    c.cluster.wait_balanced(Duration::from_secs(20)).await.unwrap();
    let s = c.cluster.status().await.unwrap();
    let led: Vec<&str> =
        s.groups.iter().filter(|g| g.id != 0 && g.leader == Some(new)).map(|g| g.name.as_str()).collect();
    assert_eq!(led.len(), 1, "node {new} leads its share of the 3 broker groups: {led:?}");
    for g in s.groups.iter().filter(|g| g.id != 0) {
        assert_eq!(g.leader, preferred_of(g.id, &g.voters, &s.retired), "{}", g.name);
    }

    // Sends kept being acknowledged through it all, and none was lost.
    let after = Instant::now();
    eventually(Duration::from_secs(10), "sends acknowledged on the new layout", || {
        let n = load.acked_since(after);
        async move { (n > 20).then_some(()) }
    })
    .await
    .unwrap();
    let acked = load.stop().await;
    assert!(acked.len() > 100, "only {} sends acknowledged", acked.len());
    let consumer =
        PullConsumer::new(PullConsumerOptions::new(endpoints_of(&c, &[2, 3, new]), "g-members")).unwrap();
    assert_all_stored(&consumer, "members", &acked).await;
}

/// Each node in turn is stopped with SIGTERM and started again, as the README's rolling restart
/// says. A stopping leader hands its groups over before it exits, so the new leader is there
/// the moment the process is gone (an election would take at least the election timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_hands_leadership_over_and_loses_nothing() {
    let mut c = cluster_with_topic(node_bin(), "rolling", 4).await;
    let producer = Producer::new(ProducerOptions::new(endpoints_of(&c, &[1, 2, 3]))).unwrap();
    let load = Load::start(&producer, "rolling");
    for id in 1..=3 {
        let led: Vec<String> = c
            .cluster
            .status()
            .await
            .unwrap()
            .groups
            .into_iter()
            .filter(|g| g.leader == Some(id))
            .map(|g| g.name)
            .collect();
        c.cluster.stop(id, Duration::from_secs(20)).await.unwrap();
        for g in &led {
            // Already moved: the survivors agree on another leader at once.
            c.cluster.wait_leader(g, Some(id), Duration::from_millis(300)).await.unwrap_or_else(|e| {
                panic!("{g} had no new leader when node {id} exited: {e}\n{}", c.log_tail(id, 30))
            });
        }
        c.cluster.start(id).unwrap();
        c.cluster.wait_balanced(START).await.unwrap();
    }
    let after = Instant::now();
    eventually(Duration::from_secs(10), "sends acknowledged after the restarts", || {
        let n = load.acked_since(after);
        async move { (n > 20).then_some(()) }
    })
    .await
    .unwrap();
    let acked = load.stop().await;
    let consumer =
        PullConsumer::new(PullConsumerOptions::new(endpoints_of(&c, &[1, 2, 3]), "g-rolling")).unwrap();
    assert_all_stored(&consumer, "rolling", &acked).await;
}
