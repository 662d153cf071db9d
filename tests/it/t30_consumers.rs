//! Consumers: receive / ack with invisible time through the SDK's simple and push consumers,
//! redelivery with the next attempt, clustering split, acks across a leader kill, bad input.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use raftmq_client::ConsumeResult;
use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PushConsumer;
use raftmq_client::PushConsumerOptions;
use raftmq_client::Received;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::START;
use raftmq_tests::TestCluster;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;
use raftmq_tests::eventually;
use raftmq_tests::receive_n;

use crate::node_bin;

/// A cluster whose brokers accept invisible times from 500 ms, with `topic` and the groups
/// `groups` (clustering, from the first offset).
async fn cluster(topic: &str, groups: &[&str]) -> TestCluster {
    let c = cluster_with_topic_tuned(node_bin(), topic, 4, &|c| c.broker.invisible_ms_min = 500).await;
    create_groups(&c, groups).await;
    c
}

async fn send_n(c: &TestCluster, topic: &str, n: usize) -> BTreeSet<String> {
    let producer = Producer::new(ProducerOptions::new(endpoints(c))).unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let r = producer.send(Message::new(topic, format!("m{i}")).with_tag("T")).await.unwrap();
        ids.insert(r.message_id);
    }
    ids
}

fn simple(c: &TestCluster, group: &str, topic: &str, wait: Duration) -> SimpleConsumer {
    let mut o = SimpleConsumerOptions::new(endpoints(c), group);
    o.await_duration = wait;
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe(topic, Subscription::All);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_ack_change_invisible_and_redelivery() {
    let c = cluster("pop", &["g-simple"]).await;
    let ids = send_n(&c, "pop", 20).await;
    let s = simple(&c, "g-simple", "pop", Duration::from_millis(500));

    let got = receive_n(&s, 20, Duration::from_secs(30), Duration::from_secs(20)).await;
    let got_ids: BTreeSet<String> = got.iter().map(|r| r.message.message_id.clone()).collect();
    assert_eq!(got.len(), 20, "each message delivered once while invisible");
    assert_eq!(got_ids, ids);
    assert!(got.iter().all(|r| r.message.delivery_attempt == 1 && !r.receipt_handle.is_empty()));

    // Ack 15; postpone 5 to 1 s and leave them unacked.
    let (later, now) = got.split_at(5);
    for r in now {
        s.ack(r).await.unwrap();
    }
    let mut postponed = Vec::new();
    for r in later {
        let changed = s.change_invisible_duration(r, Duration::from_secs(1)).await.unwrap();
        assert_ne!(changed.receipt_handle, r.receipt_handle, "a change returns a new handle");
        postponed.push(changed);
    }
    // The handle a change replaced no longer acks the message.
    let stale = s.ack(&later[0]).await.unwrap_err();
    assert_eq!(stale.code(), Some(Code::InvalidReceiptHandle), "{stale}");

    // The 5 come back, with attempt 2 and new handles; the acked 15 never do.
    let again = receive_n(&s, 5, Duration::from_secs(30), Duration::from_secs(20)).await;
    let later_ids: BTreeSet<String> = later.iter().map(|r| r.message.message_id.clone()).collect();
    let again_ids: BTreeSet<String> = again.iter().map(|r| r.message.message_id.clone()).collect();
    assert_eq!(again.len(), 5);
    assert_eq!(again_ids, later_ids, "only the unacked messages come back");
    for r in &again {
        assert_eq!(r.message.delivery_attempt, 2, "a redelivery raises the attempt by exactly one");
        assert!(postponed.iter().all(|p| p.receipt_handle != r.receipt_handle));
        s.ack(r).await.unwrap();
    }
    // Every message is acked: nothing comes back after any of the invisible times.
    let tail = receive_n(&s, 1, Duration::from_secs(30), Duration::from_secs(3)).await;
    assert!(tail.is_empty(), "acked messages delivered again: {tail:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_consumer_input_gets_a_clear_status_and_changes_nothing() {
    let c = cluster("bad", &["g-bad"]).await;
    let ids = send_n(&c, "bad", 3).await;

    // Group names RocketMQ would refuse.
    assert!(SimpleConsumer::new(SimpleConsumerOptions::new(endpoints(&c), "")).is_err());
    for name in ["has space", "%RETRY%x", &"x".repeat(300)] {
        let e = simple(&c, name, "bad", Duration::from_millis(200))
            .receive(1, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(Code::IllegalConsumerGroup), "group {name:?}: {e}");
    }
    // Invisible times outside 500 ms (this cluster's minimum) – 12 h.
    let s = simple(&c, "g-bad", "bad", Duration::from_millis(200));
    for d in [Duration::from_millis(100), Duration::from_secs(13 * 3600)] {
        let e = s.receive(1, d).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::IllegalInvisibleTime), "{d:?}: {e}");
    }
    // Malformed and forged receipt handles.
    let got = receive_n(&s, 3, Duration::from_secs(30), Duration::from_secs(20)).await;
    assert_eq!(got.len(), 3);
    for handle in ["", "garbage", "r1.2.0.0.1.1.00000000", &got[0].receipt_handle.replace("r2.", "r3.")] {
        let forged = Received { receipt_handle: handle.to_string(), ..got[0].clone() };
        let e = s.ack(&forged).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::InvalidReceiptHandle), "handle {handle:?}: {e}");
        let e = s.change_invisible_duration(&forged, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::InvalidReceiptHandle), "handle {handle:?}: {e}");
    }
    // Nothing changed: the real handles still ack, and every message was received exactly once.
    for r in &got {
        s.ack(r).await.unwrap();
    }
    let ids_got: BTreeSet<String> = got.iter().map(|r| r.message.message_id.clone()).collect();
    assert_eq!(ids_got, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_are_never_redelivered_across_a_leader_kill() {
    let mut c = cluster("acks", &["g-acks"]).await;
    let ids = send_n(&c, "acks", 200).await;
    let s = simple(&c, "g-acks", "acks", Duration::from_millis(500));
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    while acked.len() < ids.len() {
        assert!(Instant::now() < deadline, "only {} of {} acked before the deadline", acked.len(), ids.len());
        if !killed && acked.len() >= 80 {
            let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
            c.cluster.kill(leader).await.unwrap();
            killed = true;
        }
        let got = match s.receive(16, Duration::from_secs(2)).await {
            Ok(g) => g,
            Err(e) => {
                assert!(e.is_retryable() || killed, "receive failed: {e}");
                continue;
            }
        };
        for r in got {
            assert!(
                !acked.contains(&r.message.message_id),
                "acked message {} delivered again",
                r.message.message_id
            );
            // An ack that fails (the leader died under it) may be redelivered: that is allowed.
            if s.ack(&r).await.is_ok() {
                acked.insert(r.message.message_id.clone());
            }
        }
    }
    assert!(killed);
    assert_eq!(acked, ids);
    // Past every invisible time, still nothing comes back.
    let tail = receive_n(&s, 1, Duration::from_secs(2), Duration::from_secs(4)).await;
    assert!(tail.is_empty(), "acked messages delivered again after the kill: {tail:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumers_split_the_group_and_failures_come_back_with_the_next_attempt() {
    let c = cluster("push", &["g-push"]).await;
    let ids = send_n(&c, "push", 60).await;
    // Attempts seen, per consumer and message. Messages with an odd last digit fail once.
    type Seen = Arc<Mutex<BTreeMap<String, Vec<(usize, u32)>>>>;
    let seen: Seen = Arc::default();
    let mut consumers = Vec::new();
    for who in 0..2 {
        let mut o = PushConsumerOptions::new(endpoints(&c), "g-push");
        o.thread_count = 4;
        o.batch_size = 8;
        o.retry_delays = Some(vec![Duration::from_secs(1)]);
        let seen = seen.clone();
        let listener = Arc::new(move |m: &raftmq_client::MessageView| {
            seen.lock().unwrap().entry(m.message_id.clone()).or_default().push((who, m.delivery_attempt));
            let odd = m.body.last().is_some_and(|b| (b - b'0') % 2 == 1);
            if odd && m.delivery_attempt == 1 { ConsumeResult::Failure } else { ConsumeResult::Success }
        });
        let p = PushConsumer::start(o, vec![("push".into(), Subscription::Tags("T".into()))], listener)
            .await
            .unwrap();
        consumers.push(p);
    }
    eventually(Duration::from_secs(30), "every message consumed", || {
        let seen = seen.clone();
        let ids = ids.clone();
        async move {
            let s = seen.lock().unwrap();
            let done = ids.iter().all(|id| {
                s.get(id).is_some_and(|v| v.iter().any(|(_, a)| *a == 2) || v.len() == 1 && v[0].1 == 1)
            });
            done.then_some(())
        }
    })
    .await
    .unwrap();
    // Let a wrongly redelivered message show up before judging (the retry delay is 1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for p in consumers {
        p.shutdown().await;
    }
    let s = seen.lock().unwrap();
    let mut by_consumer = [0usize; 2];
    let mut failed_once = 0;
    for (id, deliveries) in s.iter() {
        assert!(ids.contains(id));
        let attempts: Vec<u32> = deliveries.iter().map(|(_, a)| *a).collect();
        match attempts.as_slice() {
            [1] => {}
            [1, 2] => failed_once += 1,
            other => panic!("message {id} delivered with attempts {other:?}"),
        }
        by_consumer[deliveries[0].0] += 1;
    }
    assert_eq!(s.len(), ids.len());
    assert_eq!(failed_once, 30, "every failed message came back once, with attempt 2");
    assert!(by_consumer.iter().all(|n| *n > 0), "both consumers of the group got messages: {by_consumer:?}");
}

/// The queues each assignment owns now.
async fn owned(assignments: &[&raftmq_client::Assignment]) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for a in assignments {
        out.push(a.queues().await.unwrap());
    }
    out
}

/// Whether the owned queue sets are disjoint and cover `all`.
fn exact_split(owned: &[Vec<u32>], all: &[u32]) -> bool {
    let mut every: Vec<u32> = owned.iter().flatten().copied().collect();
    every.sort_unstable();
    every == all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_consumers_rebalance_when_members_join_and_leave() {
    use raftmq_client::PullConsumer;
    use raftmq_client::PullConsumerOptions;
    use raftmq_client::Strategy;

    let c = cluster("rb", &[]).await;
    let all: Vec<u32> = (0..4).collect();
    for strategy in [Strategy::Average, Strategy::AverageByCircle, Strategy::ConsistentHash] {
        let group = format!("g-rb-{strategy:?}");
        let consumer = || PullConsumer::new(PullConsumerOptions::new(endpoints(&c), group.clone())).unwrap();
        let a = consumer().subscribe("rb", strategy).await.unwrap();
        let b = consumer().subscribe("rb", strategy).await.unwrap();
        // The third member runs on a runtime of its own, so it can die without saying goodbye.
        let (eps, g) = (endpoints(&c), group.clone());
        let (rt, third) = tokio::task::spawn_blocking(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let pc = PullConsumer::new(PullConsumerOptions::new(eps, g)).unwrap();
            let sub = rt.block_on(pc.subscribe("rb", strategy)).unwrap();
            (rt, sub)
        })
        .await
        .unwrap();
        // Three members: an exact split, each queue owned once.
        let t = Instant::now();
        eventually(Duration::from_secs(2), "three members split the queues", || {
            let (a, b, third, all) = (&a, &b, &third, &all);
            async move {
                let o = owned(&[a, b, third]).await;
                (a.members().len() == 3 && b.members().len() == 3 && exact_split(&o, all)).then_some(())
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        // A clean leave: the other two take over within 2 s.
        b.leave().await;
        let t_leave = Instant::now();
        eventually(Duration::from_secs(2), "rebalance after a leave", || {
            let (a, third, all) = (&a, &third, &all);
            async move { exact_split(&owned(&[a, third]).await, all).then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        let leave_ms = t_leave.elapsed().as_millis();
        // A crash (no goodbye): the last one takes everything once the heartbeats time out.
        tokio::task::spawn_blocking(move || rt.shutdown_background()).await.unwrap();
        drop(third);
        let t_crash = Instant::now();
        eventually(Duration::from_secs(2), "rebalance after a crash", || {
            let (a, all) = (&a, &all);
            async move { (a.queues().await.unwrap() == *all).then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        println!(
            "{strategy:?}: whole scenario {} ms, leave rebalanced in {leave_ms} ms, crash in {} ms",
            t.elapsed().as_millis(),
            t_crash.elapsed().as_millis()
        );
        a.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_consumers_each_get_every_message_and_resume_from_their_file() {
    use raftmq_client::BroadcastConsumer;
    use raftmq_client::BroadcastConsumerOptions;
    use raftmq_client::OffsetPolicy;

    let c = cluster("bc", &[]).await;
    let first = send_n(&c, "bc", 20).await;
    type Seen = Arc<Mutex<Vec<String>>>;
    let start = |who: usize, seen: Seen| {
        let mut o =
            BroadcastConsumerOptions::new(endpoints(&c), "g-bc", c.dir().join(format!("bc-{who}.offsets")));
        o.from = OffsetPolicy::Beginning;
        let listener = Arc::new(move |m: &raftmq_client::MessageView| {
            seen.lock().unwrap().push(m.message_id.clone());
            ConsumeResult::Success
        });
        BroadcastConsumer::start(o, "bc", Subscription::Tags("T".into()), listener)
    };
    let seen: [Seen; 2] = [Arc::default(), Arc::default()];
    let a = start(0, seen[0].clone()).await.unwrap();
    let b = start(1, seen[1].clone()).await.unwrap();
    for s in &seen {
        eventually(Duration::from_secs(20), "every consumer got every message", || {
            let s = s.clone();
            let first = first.clone();
            async move { (s.lock().unwrap().iter().cloned().collect::<BTreeSet<_>>() == first).then_some(()) }
        })
        .await
        .unwrap();
    }
    // Consumer 1 stops; messages sent meanwhile reach it after its restart, and nothing
    // it had consumed comes again (its offsets are in its file).
    b.shutdown().await;
    let second = send_n(&c, "bc", 10).await;
    let b = start(1, seen[1].clone()).await.unwrap();
    let all: BTreeSet<String> = first.union(&second).cloned().collect();
    for s in &seen {
        eventually(Duration::from_secs(20), "every consumer got the later messages", || {
            let s = s.clone();
            let all = all.clone();
            async move { (s.lock().unwrap().iter().cloned().collect::<BTreeSet<_>>() == all).then_some(()) }
        })
        .await
        .unwrap();
    }
    a.shutdown().await;
    b.shutdown().await;
    for s in &seen {
        assert_eq!(s.lock().unwrap().len(), all.len(), "each message exactly once per consumer");
    }
}
