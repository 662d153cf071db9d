//! Broker groups: the replicated CommitLog through the RocketMQ 5 wire protocol. Send and pull,
//! offsets, leader failover under load (killed or paused), full restart, bad input.

use std::collections::BTreeMap;
use std::time::Duration;

use raftmq_client::ClientError;
use raftmq_client::Message;
use raftmq_client::OffsetPolicy;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::admin::TopicSpec;
use raftmq_client::proto::rocketmq as pb;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::START;
use raftmq_tests::TestCluster;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::endpoints;
use raftmq_tests::eventually;

use crate::node_bin;

/// Every stored message of every queue of `topic`, by queue, from each queue's first offset.
async fn read_all(consumer: &PullConsumer, topic: &str) -> BTreeMap<u32, Vec<(u64, String)>> {
    try_read_all(consumer, topic).await.expect("a whole read of the topic")
}

/// Every message of every queue of `topic`, by queue (offset, body); `None` if a read failed.
pub(crate) async fn try_read_all(
    consumer: &PullConsumer,
    topic: &str,
) -> Option<BTreeMap<u32, Vec<(u64, String)>>> {
    let mut out = BTreeMap::new();
    for q in consumer.queues(topic).await.ok()? {
        let mut offset = consumer.query_offset(topic, q, OffsetPolicy::Beginning).await.ok()?;
        let mut msgs = Vec::new();
        loop {
            let p = consumer.pull(topic, q, offset, 256, Duration::ZERO).await.ok()?;
            if p.messages.is_empty() {
                break;
            }
            for m in p.messages {
                msgs.push((m.offset, String::from_utf8(m.body.to_vec()).ok()?));
            }
            offset = p.next_offset;
        }
        out.insert(q, msgs);
    }
    Some(out)
}

fn assert_gapless(all: &BTreeMap<u32, Vec<(u64, String)>>) {
    for (q, msgs) in all {
        for (i, (o, _)) in msgs.iter().enumerate() {
            assert_eq!(*o, i as u64, "queue {q}: offsets must start at 0 and have no gap");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_pull_batches_and_offsets() {
    let c = cluster_with_topic(node_bin(), "orders", 4).await;
    let producer = Producer::new(ProducerOptions::new(c.cluster.node(2).client_addr.clone())).unwrap();
    let before =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let r = producer
        .send(Message::new("orders", "one").with_tag("TagA").with_key("k1").with_property("p", "v"))
        .await
        .unwrap();
    assert_eq!(r.message_id.len(), 34);
    let batch: Vec<Message> = (0..50).map(|i| Message::new("orders", format!("b{i}"))).collect();
    let receipts = producer.send_batch(batch).await.unwrap();
    assert_eq!(receipts.len(), 50);

    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "readers")).unwrap();
    let all = read_all(&consumer, "orders").await;
    assert_gapless(&all);
    let bodies: Vec<&str> = all.values().flatten().map(|(_, b)| b.as_str()).collect();
    assert_eq!(bodies.len(), 51);
    for i in 0..50 {
        assert!(bodies.contains(&format!("b{i}").as_str()));
    }
    // Every system property the clients need comes back.
    let q_one = all.iter().find(|(_, m)| m.iter().any(|(_, b)| b == "one")).map(|(q, _)| *q).unwrap();
    let p = consumer.pull("orders", q_one, 0, 100, Duration::ZERO).await.unwrap();
    let m = p.messages.iter().find(|m| &m.body[..] == b"one").unwrap();
    assert_eq!(
        (m.tag.as_deref(), m.keys.clone(), m.properties.get("p").map(String::as_str)),
        (Some("TagA"), vec!["k1".to_string()], Some("v"))
    );
    assert_eq!(m.message_id, r.message_id);
    assert!(m.store_ms >= before);

    // Offset queries and commits.
    let q = q_one;
    let end = consumer.query_offset("orders", q, OffsetPolicy::End).await.unwrap();
    assert_eq!(end, all[&q].len() as u64);
    assert_eq!(consumer.query_offset("orders", q, OffsetPolicy::Beginning).await.unwrap(), 0);
    assert_eq!(
        consumer.query_offset("orders", q, OffsetPolicy::Timestamp(before - 60_000)).await.unwrap(),
        0
    );
    assert_eq!(consumer.query_offset("orders", q, OffsetPolicy::Timestamp(i64::MAX / 4)).await.unwrap(), end);
    assert_eq!(consumer.committed("orders", q).await.unwrap(), None);
    consumer.commit("orders", q, end).await.unwrap();
    assert_eq!(consumer.committed("orders", q).await.unwrap(), Some(end));
    let other =
        PullConsumer::new(PullConsumerOptions::new(c.cluster.node(3).client_addr.clone(), "others")).unwrap();
    assert_eq!(other.committed("orders", q).await.unwrap(), None, "offsets are per consumer group");

    // Long polling wakes on a new message, well before its timeout.
    let t = std::time::Instant::now();
    let waiter = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            let mut total = Vec::new();
            for q in consumer.queues("orders").await.unwrap() {
                let end = consumer.query_offset("orders", q, OffsetPolicy::End).await.unwrap();
                total.push((q, end));
            }
            total
        })
    };
    let ends = waiter.await.unwrap();
    let (wq, wend) = ends[0];
    let poll = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.pull("orders", wq, wend, 10, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Send until one lands in the polled queue.
    for i in 0..64 {
        producer.send(Message::new("orders", format!("late{i}"))).await.unwrap();
        if poll.is_finished() {
            break;
        }
    }
    let got = poll.await.unwrap().unwrap();
    assert!(!got.messages.is_empty(), "long poll returned when a message arrived");
    assert!(t.elapsed() < Duration::from_secs(8), "long poll woke on apply, not at its timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_under_load_loses_no_acknowledged_message() {
    let mut c = cluster_with_topic(node_bin(), "load", 8).await;
    let eps = endpoints(&c);
    let consumer = PullConsumer::new(PullConsumerOptions::new(eps.clone(), "g1")).unwrap();
    // Commit an offset before the kill; it must survive.
    let producer = Producer::new(ProducerOptions::new(eps.clone())).unwrap();
    producer.send_batch((0..40).map(|i| Message::new("load", format!("pre{i}"))).collect()).await.unwrap();
    let q0_end = consumer.query_offset("load", 0, OffsetPolicy::End).await.unwrap();
    consumer.commit("load", 0, q0_end).await.unwrap();

    let load = Load::start(&producer, "load");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    c.cluster.kill(leader).await.unwrap();
    c.cluster.wait_leader("broker-a", Some(leader), Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = load.stop().await;
    c.cluster.start(leader).unwrap();

    assert!(acked.len() > 100, "the load ran: {} acked", acked.len());
    assert_all_stored(&consumer, "load", &acked).await;
    assert_eq!(
        consumer.committed("load", 0).await.unwrap(),
        Some(q0_end),
        "committed offset survived the failover"
    );
}

/// Four producer tasks sending distinct bodies in a loop; what was acknowledged, with when.
pub(crate) struct Load {
    acked: std::sync::Arc<std::sync::Mutex<Vec<(String, std::time::Instant)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(producer: &Producer, topic: &str) -> Load {
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let senders = (0..4)
            .map(|t| {
                let (producer, acked, stop, topic) =
                    (producer.clone(), acked.clone(), stop.clone(), topic.to_string());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let body = format!("t{t}-{i}");
                        if producer.send(Message::new(topic.as_str(), body.clone())).await.is_ok() {
                            acked.lock().unwrap().push((body, std::time::Instant::now()));
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load { acked, stop, senders }
    }

    /// Acknowledged sends so far that ended after `t`.
    pub(crate) fn acked_since(&self, t: std::time::Instant) -> usize {
        self.acked.lock().unwrap().iter().filter(|(_, at)| *at > t).count()
    }

    /// Every acknowledged body so far, with when its acknowledgment arrived.
    pub(crate) fn acked_at(&self) -> Vec<(String, std::time::Instant)> {
        self.acked.lock().unwrap().clone()
    }

    /// Stops the senders; every acknowledged body.
    pub(crate) async fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in self.senders {
            s.await.unwrap();
        }
        self.acked.lock().unwrap().iter().map(|(b, _)| b.clone()).collect()
    }
}

/// Every one of `acked` is stored in `topic`, whose queues are gapless.
pub(crate) async fn assert_all_stored(consumer: &PullConsumer, topic: &str, acked: &[String]) {
    let all = read_all(consumer, topic).await;
    assert_gapless(&all);
    let stored: std::collections::HashSet<&str> = all.values().flatten().map(|(_, b)| b.as_str()).collect();
    let lost: Vec<&String> = acked.iter().filter(|b| !stored.contains(b.as_str())).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// A leader frozen by SIGSTOP for 10 s: the others elect a new leader and sends keep being
/// acknowledged meanwhile; after SIGCONT the old leader steps down, and nothing any leader
/// acknowledged is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_that_resumes_loses_nothing_acknowledged() {
    use nix::sys::signal::Signal;

    let mut c = cluster_with_topic(node_bin(), "pause", 8).await;
    let eps = endpoints(&c);
    let producer = Producer::new(ProducerOptions::new(eps.clone())).unwrap();
    let load = Load::start(&producer, "pause");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (leader, term) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    c.cluster.signal(leader, Signal::SIGSTOP).unwrap();
    let paused = std::time::Instant::now();
    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    let admin = c.admin(survivor);
    eventually(Duration::from_secs(10), "a new leader of broker-a", || {
        let admin = &admin;
        async move {
            let s = admin.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == "broker-a")?;
            (g.leader.is_some_and(|l| l != leader) && g.term > term).then_some(())
        }
    })
    .await
    .unwrap();
    let elected = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(paused.elapsed())).await;
    let during = load.acked_since(elected);
    c.cluster.signal(leader, Signal::SIGCONT).unwrap();
    // The resumed node hears of the new term and follows.
    eventually(Duration::from_secs(20), "the resumed node follows the new term", || {
        let admin = &admin;
        async move {
            let s = admin.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == "broker-a")?;
            let r = g.replicas.iter().find(|r| r.node_id == leader)?;
            (r.term > term && r.role == "follower").then_some(())
        }
    })
    .await
    .unwrap();
    let acked = load.stop().await;

    assert!(during > 50, "sends were acknowledged while the old leader was paused: {during}");
    let consumer = PullConsumer::new(PullConsumerOptions::new(eps, "g-pause")).unwrap();
    assert_all_stored(&consumer, "pause", &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_restart_keeps_every_acknowledged_message() {
    let mut c = cluster_with_topic(node_bin(), "durable", 4).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let mut acked = Vec::new();
    for i in 0..200 {
        producer.send(Message::new("durable", format!("m{i}"))).await.unwrap();
        acked.push(format!("m{i}"));
    }
    for id in 1..=3 {
        c.cluster.kill(id).await.unwrap();
    }
    c.cluster.start_all().unwrap();
    for g in ["broker-a", "broker-b"] {
        c.cluster.wait_leader(g, None, START).await.unwrap();
    }
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "after")).unwrap();
    let all = eventually(START, "messages readable after restart", || {
        let consumer = consumer.clone();
        async move {
            let all = read_all(&consumer, "durable").await;
            (all.values().map(Vec::len).sum::<usize>() >= 200).then_some(all)
        }
    })
    .await
    .unwrap();
    assert_gapless(&all);
    let stored: std::collections::HashSet<&str> = all.values().flatten().map(|(_, b)| b.as_str()).collect();
    assert!(acked.iter().all(|b| stored.contains(b.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status_and_stores_nothing() {
    let mut c = cluster_with_topic(node_bin(), "strict", 2).await;
    let addr = c.cluster.node(1).client_addr.clone();
    let producer = Producer::new(ProducerOptions::new(addr.clone())).unwrap();
    let consumer = PullConsumer::new(PullConsumerOptions::new(addr.clone(), "g")).unwrap();

    let e = producer.send(Message::new("strict", Vec::<u8>::new())).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::MessageBodyEmpty), "{e}");
    let e = producer.send(Message::new("strict", vec![b'x'; (4 << 20) + 1])).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::MessageBodyTooLarge), "{e}");
    assert!(e.to_string().contains("limit is 4194304"), "{e}");
    let ok = producer.send(Message::new("strict", vec![b'x'; 4 << 20])).await.unwrap();
    let e = producer.send(Message::new("nosuchtopic", "x")).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::TopicNotFound), "{e}");
    let e = producer.send(Message::new("strict", "x").with_tag("a|b")).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalMessageTag), "{e}");

    // Nothing refused was stored: only the 4 MiB message is there.
    let mut total = 0;
    for q in consumer.queues("strict").await.unwrap() {
        total += consumer.query_offset("strict", q, OffsetPolicy::End).await.unwrap();
    }
    assert_eq!(total, 1, "{ok:?}");

    let e = consumer.pull("strict", 0, 1000, 10, Duration::ZERO).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalOffset), "{e}");
    let e = consumer.commit("strict", 0, 1000).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalOffset), "{e}");
    let bad_group = PullConsumer::new(PullConsumerOptions::new(addr.clone(), "bad group")).unwrap();
    let e = bad_group.commit("strict", 0, 0).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalConsumerGroup), "{e}");
    let e = consumer.pull("strict", 7, 0, 10, Duration::ZERO).await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidArgument(_)), "{e}");

    // Raw requests the SDK would never send.
    let mut raw = raftmq_client::proto::rocketmq::messaging_service_client::MessagingServiceClient::connect(
        format!("http://{addr}"),
    )
    .await
    .unwrap();
    let with_id = |msg| {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("x-mq-client-id", tonic::metadata::MetadataValue::from_static("raw-test"));
        r
    };
    let r =
        raw.send_message(with_id(pb::SendMessageRequest { messages: vec![] })).await.unwrap().into_inner();
    assert_eq!(r.status.unwrap().code, Code::BadRequest as i32);
    let msg = pb::Message {
        topic: Some(pb::Resource { resource_namespace: String::new(), name: "strict".into() }),
        system_properties: Some(pb::SystemProperties { message_id: " ".into(), ..Default::default() }),
        body: bytes::Bytes::from_static(b"x"),
        ..Default::default()
    };
    let r =
        raw.send_message(with_id(pb::SendMessageRequest { messages: vec![msg] })).await.unwrap().into_inner();
    assert_eq!(r.entries[0].status.as_ref().unwrap().code, Code::IllegalMessageId as i32);
    // Without a client id, a clear status (not a transport error).
    let r = raw.send_message(pb::SendMessageRequest { messages: vec![] }).await.unwrap().into_inner();
    assert_eq!(r.status.unwrap().code, Code::ClientIdRequired as i32);
    let r = raw.end_transaction(pb::EndTransactionRequest::default()).await.unwrap().into_inner();
    assert_eq!(r.status.unwrap().code, Code::ClientIdRequired as i32);
    // What raftmq does not do (lite topics) says so.
    let e = raw.sync_lite_subscription(pb::SyncLiteSubscriptionRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented);

    // A send to a node that leads no broker group is forwarded to a leader, client id and all.
    let idle = raftmq_tests::idle_node(&mut c).await;
    let mut raw = raftmq_client::proto::rocketmq::messaging_service_client::MessagingServiceClient::connect(
        format!("http://{}", c.cluster.node(idle).client_addr),
    )
    .await
    .unwrap();
    let msg = pb::Message {
        topic: Some(pb::Resource { resource_namespace: String::new(), name: "strict".into() }),
        system_properties: Some(pb::SystemProperties {
            message_id: raftmq_client::message::new_message_id(),
            ..Default::default()
        }),
        body: bytes::Bytes::from_static(b"forwarded"),
        ..Default::default()
    };
    let r =
        raw.send_message(with_id(pb::SendMessageRequest { messages: vec![msg] })).await.unwrap().into_inner();
    assert_eq!(r.entries.len(), 1, "{r:?}");
    assert_eq!(r.entries[0].status.as_ref().unwrap().code, Code::Ok as i32, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_messages_and_a_lagging_replica_rejoins_by_snapshot() {
    let tune = |c: &mut raftmq_node::config::RawConfig| {
        c.broker.retention_check_secs = 1;
        c.broker.compact_min_entries = 1;
    };
    let mut c = TestCluster::start_with(node_bin(), 3, 1, &tune).expect("start cluster");
    for g in ["nameserver", "broker-a"] {
        c.cluster.wait_leader(g, None, START).await.unwrap();
    }
    // The leader balancer moves broker-a to its preferred node once: wait for that, so the victim
    // chosen below is not the next leader and no transfer races the sends.
    c.cluster.wait_balanced(START).await.unwrap();
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    let victim = if leader == 3 { 2 } else { 3 };
    let alive = if leader == 1 { 1 } else { leader };
    let admin = c.admin(alive);
    for (name, secs) in [("short", 2), ("long", 72 * 3600)] {
        let spec =
            TopicSpec { name: name.into(), queue_count: 2, retention_secs: secs, ..Default::default() };
        eventually(START, "topic created", || {
            let (admin, spec) = (admin.clone(), spec.clone());
            async move { admin.create_topic(spec).await.ok() }
        })
        .await
        .unwrap();
    }
    // The victim misses everything from here on.
    let victim_last = {
        let s = admin.cluster_status().await.unwrap();
        let g = s.groups.into_iter().find(|g| g.name == "broker-a").unwrap();
        g.replicas.iter().find(|r| r.node_id == victim).unwrap().last_log_index.unwrap_or(0)
    };
    c.cluster.stop(victim, Duration::from_secs(20)).await.unwrap();
    let eps = c.cluster.node(alive).client_addr.clone();
    let producer = Producer::new(ProducerOptions::new(eps.clone())).unwrap();
    producer.send_batch((0..100).map(|i| Message::new("short", format!("old{i}"))).collect()).await.unwrap();
    let consumer = PullConsumer::new(PullConsumerOptions::new(eps.clone(), "g")).unwrap();

    // Retention removes the short-lived messages: every queue's first offset reaches its end.
    eventually(Duration::from_secs(30), "expired messages removed", || {
        let consumer = consumer.clone();
        async move {
            for q in 0..2 {
                let min = consumer.query_offset("short", q, OffsetPolicy::Beginning).await.ok()?;
                let end = consumer.query_offset("short", q, OffsetPolicy::End).await.ok()?;
                if min != end || end == 0 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await
    .unwrap();
    // ... and the running replicas purge their logs up to the floor, past the victim's log.
    eventually(Duration::from_secs(30), "logs purged", || {
        let admin = admin.clone();
        async move {
            let s = admin.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == "broker-a")?;
            let past = |r: &raftmq_client::proto::admin::ReplicaStatus| r.purged.unwrap_or(0) > victim_last;
            g.replicas.iter().filter(|r| r.node_id != victim).all(past).then_some(())
        }
    })
    .await
    .unwrap();
    producer.send_batch((0..100).map(|i| Message::new("long", format!("keep{i}"))).collect()).await.unwrap();

    c.cluster.start(victim).unwrap();
    eventually(START, "lagging replica catches up", || {
        let admin = admin.clone();
        async move {
            let s = admin.cluster_status().await.ok()?;
            let g = s.groups.into_iter().find(|g| g.name == "broker-a")?;
            let leader = g.replicas.iter().find(|r| r.role == "leader")?.clone();
            let me = g.replicas.iter().find(|r| r.node_id == victim)?.clone();
            (me.role == "follower" && me.applied.is_some() && me.applied >= leader.committed).then_some(())
        }
    })
    .await
    .unwrap();
    let log = std::fs::read_to_string(c.dir().join(format!("node-{victim}.log"))).unwrap();
    assert!(
        log.contains("received snapshot"),
        "the lagging replica caught up by snapshot:\n{}",
        c.log_tail(victim, 80)
    );

    // The rejoined replica serves every retained message, and nothing retention removed.
    admin.transfer_leader("broker-a", victim).await.unwrap();
    let all = read_all(&consumer, "long").await;
    let bodies: std::collections::HashSet<String> = all.values().flatten().map(|(_, b)| b.clone()).collect();
    assert_eq!(bodies.len(), 100);
    for i in 0..100 {
        assert!(bodies.contains(&format!("keep{i}")));
    }
    let short = read_all(&consumer, "short").await;
    assert!(short.values().all(Vec::is_empty), "expired messages stay gone");

    // A node whose data was wiped does not rejoin under its old id: it stops with the reason.
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    let wiped = if leader == 1 { 2 } else { 1 };
    c.cluster.stop(wiped, Duration::from_secs(20)).await.unwrap();
    std::fs::remove_dir_all(c.dir().join(format!("node-{wiped}"))).unwrap();
    c.cluster.start(wiped).unwrap();
    let status = eventually(START, "the wiped node to exit", || {
        let st = c.cluster.nodes[(wiped - 1) as usize].is_running();
        async move { (!st).then_some(()) }
    })
    .await;
    status.unwrap();
    let log = std::fs::read_to_string(c.dir().join(format!("node-{wiped}.log"))).unwrap();
    assert!(log.contains("its data was lost or wiped"), "{}", c.log_tail(wiped, 5));
}
