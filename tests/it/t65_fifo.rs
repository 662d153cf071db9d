//! FIFO: messages of one message group go to one queue and are consumed in send order by an
//! orderly push consumer of a FIFO group, across a leader kill; a message that keeps failing
//! is retried about every second, then goes to the DLQ, and its group moves on; groups on other
//! queues are not held up meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use raftmq_client::ConsumeResult;
use raftmq_client::Message;
use raftmq_client::MessageView;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PushConsumer;
use raftmq_client::PushConsumerOptions;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_client::admin::GroupSpec;
use raftmq_client::admin::TopicSpec;
use raftmq_tests::START;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;
use raftmq_tests::eventually;

use crate::node_bin;

const GROUPS: usize = 6;
const PER_GROUP: usize = 12;

/// What the listener saw: per message group, the bodies consumed successfully, in order; when
/// each group finished; the queue of each group.
#[derive(Default)]
struct Seen {
    ok: BTreeMap<String, Vec<String>>,
    done_at: BTreeMap<String, Instant>,
    queue: BTreeMap<String, u32>,
    stuck_attempts: Vec<(u32, Instant)>,
}

/// The queue of a message group: FNV-1a of its name modulo the queue count (the broker's
/// documented, stable rule).
fn queue_of(group: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % 4) as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_keep_send_order_and_a_stuck_message_goes_to_the_dlq() {
    let mut c = cluster_with_topic_tuned(node_bin(), "plain", 4, &|c| c.broker.invisible_ms_min = 500).await;
    let admin = c.admin(1);
    let spec =
        TopicSpec { name: "fifo".into(), queue_count: 4, message_type: "FIFO".into(), ..Default::default() };
    admin.create_topic(spec).await.unwrap();
    let group = GroupSpec {
        name: "g-fifo".into(),
        fifo: true,
        consume_from: "FIRST".into(),
        max_delivery_attempts: 3,
        ..Default::default()
    };
    admin.create_group(group).await.unwrap();
    create_groups(&c, &["g-fifo-dlq"]).await;

    // Interleaved sends; "stuck" has a first message that always fails.
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    let names: Vec<String> =
        (0..GROUPS).map(|g| if g == 0 { "stuck".into() } else { format!("mg-{g}") }).collect();
    for i in 0..PER_GROUP {
        for n in &names {
            producer
                .send(Message::new("fifo", format!("{n}/{i}")).with_message_group(n.clone()))
                .await
                .unwrap();
        }
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let listener = Arc::new(move |m: &MessageView| {
        let body = String::from_utf8_lossy(&m.body).to_string();
        let g = m.message_group.clone().unwrap_or_default();
        let mut s = s2.lock().unwrap();
        s.queue.insert(g.clone(), m.queue_id);
        if body == "stuck/0" {
            s.stuck_attempts.push((m.delivery_attempt, Instant::now()));
            return ConsumeResult::Failure;
        }
        let list = s.ok.entry(g.clone()).or_default();
        // Acks still in flight at the leader kill may be lost: those messages come again (at
        // least once). The order of first consumption is what FIFO promises.
        if !list.contains(&body) {
            list.push(body);
        }
        if list.len() == PER_GROUP - usize::from(g == "stuck") {
            s.done_at.insert(g, Instant::now());
        }
        ConsumeResult::Success
    });
    let mut opts = PushConsumerOptions::new(endpoints(&c), "g-fifo");
    opts.orderly = true;
    opts.thread_count = 4;
    opts.invisible = Duration::from_secs(5);
    opts.max_delivery_attempts = 3;
    let consumer =
        PushConsumer::start(opts, vec![("fifo".into(), Subscription::All)], listener).await.unwrap();

    // Groups on other queues than "stuck" finish while it is still retrying; then a broker
    // leader dies while the stuck queue still has everything to deliver.
    let others: Vec<String> = names.iter().filter(|n| queue_of(n) != queue_of("stuck")).cloned().collect();
    assert!(!others.is_empty(), "pick names that spread over the queues");
    eventually(Duration::from_secs(20), "the groups on other queues consumed", || {
        let (seen, others) = (seen.clone(), others.clone());
        async move {
            let s = seen.lock().unwrap();
            others.iter().all(|n| s.done_at.contains_key(n)).then_some(())
        }
    })
    .await
    .unwrap();
    assert!(
        seen.lock().unwrap().ok.get("stuck").is_none_or(Vec::is_empty),
        "the stuck group moved on before its first message was dead"
    );
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    c.cluster.kill(leader).await.unwrap();

    eventually(Duration::from_secs(40), "every group consumed", || {
        let seen = seen.clone();
        async move { (seen.lock().unwrap().done_at.len() == GROUPS).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", seen.lock().unwrap().ok));
    consumer.shutdown().await;

    {
        let s = seen.lock().unwrap();
        for n in &names {
            let want: Vec<String> =
                (0..PER_GROUP).filter(|i| !(n == "stuck" && *i == 0)).map(|i| format!("{n}/{i}")).collect();
            assert_eq!(s.ok[n], want, "group {n} out of order");
        }
        // The stuck message: three attempts about a second apart, then the DLQ.
        let attempts: Vec<u32> = s.stuck_attempts.iter().map(|(a, _)| *a).collect();
        assert_eq!(attempts, vec![1, 2, 3], "attempts of the stuck message");
        for w in s.stuck_attempts.windows(2) {
            let gap = w[1].1 - w[0].1;
            assert!(gap < Duration::from_secs(4), "retry gap {gap:?}");
        }
        // Each group stayed on its queue.
        for n in &names {
            assert_eq!(s.queue[n], queue_of(n), "group {n}");
        }
    }

    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-fifo-dlq");
    o.await_duration = Duration::from_millis(300);
    let dlq = SimpleConsumer::new(o).unwrap();
    dlq.subscribe("%DLQ%g-fifo", Subscription::All);
    let dead = eventually(Duration::from_secs(10), "the stuck message in the DLQ", || {
        let dlq = dlq.clone();
        async move { dlq.receive(8, Duration::from_secs(30)).await.ok().filter(|v| !v.is_empty()) }
    })
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].message.body[..], b"stuck/0");
    let retried = dead[0].message.properties.get("RECONSUME_TIME").map(String::as_str);
    assert_eq!(retried, Some("2"), "three attempts in place: two retries");
}
