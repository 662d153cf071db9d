//! Server-side filters through the SDK: SQL92 and tags on receive and on pull (across a leader
//! kill of a broker group), and a bad SQL92 expression refused with ILLEGAL_FILTER_EXPRESSION.

use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::SimpleConsumer;
use raftmq_client::SimpleConsumerOptions;
use raftmq_client::Subscription;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::START;
use raftmq_tests::cluster_with_topic;
use raftmq_tests::create_groups;
use raftmq_tests::endpoints;

use crate::node_bin;

const N: usize = 40;

/// Message `i`: region alternates Hangzhou / Beijing, price is `i` (every fifth has none, every
/// seventh a decimal), tag TagA for even `i`, TagB for odd.
fn message(topic: &str, i: usize) -> Message {
    let region = if i.is_multiple_of(2) { "Hangzhou" } else { "Beijing" };
    let m = Message::new(topic, format!("m{i}")).with_tag(if i.is_multiple_of(2) { "TagA" } else { "TagB" });
    let m = m.with_property("region", region).with_property("i", i.to_string());
    match i {
        i if i % 5 == 0 => m,
        i if i % 7 == 0 => m.with_property("price", format!("{i}.5")),
        i => m.with_property("price", i.to_string()),
    }
}

/// The `i` of the messages the SQL92 test expression should select.
fn wanted(pred: impl Fn(usize) -> bool) -> BTreeSet<String> {
    (0..N).filter(|i| pred(*i)).map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_and_tag_filters_on_receive_and_pull() {
    let mut c = cluster_with_topic(node_bin(), "filt", 4).await;
    create_groups(&c, &["g-sql", "g-tag", "g-bad"]).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    for i in 0..N {
        producer.send(message("filt", i)).await.unwrap();
    }
    let index = |m: &raftmq_client::MessageView| m.properties.get("i").cloned().unwrap_or_default();

    // Receive: region Hangzhou with an integer price above 10. Decimal prices are a type
    // mismatch against the integer literal, and missing prices are NULL: both filtered out.
    let sql = "region = 'Hangzhou' AND price IS NOT NULL AND price > 10";
    let expected = wanted(|i| i % 2 == 0 && i % 5 != 0 && i % 7 != 0 && i > 10);
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-sql");
    o.await_duration = Duration::from_millis(500);
    let s = SimpleConsumer::new(o).unwrap();
    s.subscribe("filt", Subscription::Sql(sql.into()));
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < expected.len() && Instant::now() < deadline {
        for r in s.receive(32, Duration::from_secs(30)).await.unwrap() {
            assert!(got.insert(index(&r.message)), "delivered twice: {:?}", r.message.properties);
            s.ack(&r).await.unwrap();
        }
    }
    assert_eq!(got, expected, "{sql}");
    // The group's progress past the filtered-out messages is in the log: a new leader of
    // broker-a delivers none of them. Nothing else is pending: a non-matching message would
    // come now.
    let (leader, _) = c.cluster.wait_leader("broker-a", None, START).await.unwrap();
    c.cluster.kill(leader).await.unwrap();
    let quiet_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < quiet_until {
        // A receive may fail while broker-a elects its new leader.
        let more = s.receive(32, Duration::from_secs(30)).await.unwrap_or_default();
        assert!(more.is_empty(), "{sql} also delivered {:?}", more[0].message.properties);
    }

    // Receive by tag.
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-tag");
    o.await_duration = Duration::from_millis(500);
    let t = SimpleConsumer::new(o).unwrap();
    t.subscribe("filt", Subscription::Tags("TagB".into()));
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < N / 2 && Instant::now() < deadline {
        for r in t.receive(32, Duration::from_secs(30)).await.unwrap_or_default() {
            assert_eq!(r.message.tag.as_deref(), Some("TagB"));
            got.insert(index(&r.message));
            let _ = t.ack(&r).await;
        }
    }
    assert_eq!(got, wanted(|i| i % 2 == 1));

    // Pull with TAGS and BETWEEN / IN: every queue from offset 0.
    let sql = "TAGS = 'TagA' AND (i BETWEEN 4 AND 20) AND region IN ('Hangzhou', 'Shanghai')";
    let pc = PullConsumer::new(PullConsumerOptions::new(endpoints(&c), "g-sql")).unwrap();
    let mut got = BTreeSet::new();
    for q in pc.queues("filt").await.unwrap() {
        let mut offset = 0;
        loop {
            let p = pc
                .pull_filtered(
                    "filt",
                    q,
                    offset,
                    8,
                    Duration::from_millis(200),
                    &Subscription::Sql(sql.into()),
                )
                .await
                .unwrap();
            got.extend(p.messages.iter().map(index));
            if p.next_offset == offset {
                break;
            }
            offset = p.next_offset;
        }
    }
    assert_eq!(got, wanted(|i| i % 2 == 0 && (4..=20).contains(&i)), "{sql}");

    // A bad expression: refused, with the position of the error.
    let mut o = SimpleConsumerOptions::new(endpoints(&c), "g-bad");
    o.await_duration = Duration::from_millis(200);
    let bad = SimpleConsumer::new(o).unwrap();
    bad.subscribe("filt", Subscription::Sql("price > 'cheap'".into()));
    let e = bad.receive(1, Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalFilterExpression), "{e}");
    assert!(e.to_string().contains("column 9"), "{e}");
    let e = pc
        .pull_filtered("filt", 0, 0, 8, Duration::ZERO, &Subscription::Sql("(a = 1".into()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::IllegalFilterExpression), "{e}");
}
