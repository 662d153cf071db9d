//! Delay and scheduled messages: delivered once, never early and at most a second late — also
//! when the leader of the broker group holding them is killed before they are due.

use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::START;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;

use crate::node_bin;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_arrive_once_on_time_across_a_leader_kill() {
    let mut c = cluster_with_topic(node_bin(), "plain", 4).await;
    raftmq_tests::create_topic(&c, "sched", 4, "DELAY").await;
    create_groups(&c, &["g-delay"]).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();

    // Too far ahead, or a delay on a NORMAL topic: refused.
    let e = producer
        .send(Message::new("sched", "late").with_delivery_time(now_ms() + 4 * 24 * 3600 * 1000))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalDeliveryTime), "{e}");
    let e = producer.send(Message::new("plain", "x").with_delay(Duration::from_secs(1))).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::MessagePropertyConflictWithType), "{e}");
    assert!(Message::new("sched", "x").with_delay_level(19).is_none());

    // Levels 1 (1 s) and 2 (5 s), and timestamps 2-3 s ahead: eight messages over both groups.
    let mut due: BTreeMap<String, i64> = BTreeMap::new();
    let send = |m: Message| {
        let producer = producer.clone();
        async move {
            let at = m.delivery_ms.unwrap();
            (producer.send(m).await.unwrap().message_id, at)
        }
    };
    for (id, at) in [
        send(Message::new("sched", "level-1").with_delay_level(1).unwrap()).await,
        send(Message::new("sched", "level-2").with_delay_level(2).unwrap()).await,
    ] {
        due.insert(id, at);
    }
    for i in 0..6 {
        let at = now_ms() + 2000 + i * 200;
        let (id, at) = send(Message::new("sched", format!("at-{i}")).with_delivery_time(at)).await;
        due.insert(id, at);
    }
    // A recalled one never comes; recalling twice is refused.
    let recalled =
        producer.send(Message::new("sched", "recalled").with_delay(Duration::from_secs(2))).await.unwrap();
    producer.recall("sched", &recalled).await.unwrap();
    let e = producer.recall("sched", &recalled).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::MessageNotFound), "{e}");
    // Kill the leader of broker-a before anything is due.
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    c.cluster.kill(leader).await.unwrap();

    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-delay");
    o.await_duration = Duration::from_millis(200);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe("sched", Subscription::All);
    let mut late: BTreeMap<String, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while late.len() < due.len() && Instant::now() < deadline {
        let got = match s.receive(32, Duration::from_secs(30)).await {
            Ok(got) => got,
            Err(_) => continue, // the killed leader's group is electing
        };
        let now = now_ms();
        for r in got {
            let id = r.message.message_id.clone();
            let at = *due.get(&id).unwrap_or_else(|| panic!("unexpected message {id}"));
            assert!(now >= at, "{id} delivered {} ms early", at - now);
            assert!(late.insert(id.clone(), now - at).is_none(), "{id} delivered twice");
            s.ack(&r).await.unwrap();
        }
    }
    assert_eq!(
        late.len(),
        due.len(),
        "missing: {:?}",
        due.keys().filter(|k| !late.contains_key(*k)).collect::<Vec<_>>()
    );
    let worst = late.values().max().copied().unwrap_or(0);
    println!("delay lateness ms: {late:?}");
    assert!(worst <= 1000, "a delayed message came {worst} ms late: {late:?}");
}
