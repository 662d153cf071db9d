//! `[broker] auto_create_topics`: off by default (TOPIC_NOT_FOUND, checked in `t20`); on, a
//! producer's first send creates the topic (MIXED, 8 queues) once, and bad names are still refused.

use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::endpoints;

use crate::node_bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_send_creates_the_topic_when_configured() {
    let c = cluster_with_topic_tuned(node_bin(), "seed", 2, &|c| c.broker.auto_create_topics = true).await;
    let producer = Producer::new(ProducerOptions::new(endpoints(&c))).unwrap();
    for i in 0..5 {
        producer.send(Message::new("fresh", format!("m{i}"))).await.unwrap();
    }
    let delayed = Message::new("fresh", "later").with_delay(std::time::Duration::from_secs(1));
    producer.send(delayed).await.unwrap();
    let t = c.admin(3).describe_topic("fresh").await.unwrap();
    assert_eq!((t.message_type.as_str(), t.queues.len()), ("MIXED", 8));
    let created = c.admin(1).list_topics().await.unwrap().iter().filter(|t| t.name == "fresh").count();
    assert_eq!(created, 1);

    for (name, code) in [("has space", Code::IllegalTopic), ("%RETRY%x", Code::IllegalTopic)] {
        let e = producer.send(Message::new(name, "x")).await.unwrap_err();
        assert_eq!(e.code(), Some(code), "{name}: {e}");
    }
    assert!(!c.admin(1).list_topics().await.unwrap().iter().any(|t| t.name == "has space"));
}
