//! Flow control: a send refused because its broker group's backlog is full, or because the node
//! is over its memory budget, gets TOO_MANY_REQUESTS with a retry-after hint and stores nothing;
//! the SDK backs off by the hint and gets through; `/metrics` shows the refusals and the limits.

use std::time::Duration;

use raftmq_client::ClientError;
use raftmq_client::Message;
use raftmq_client::OffsetPolicy;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::proto::rocketmq::Code;
use raftmq_tests::TestCluster;
use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::endpoints;
use raftmq_tests::metric_sum as sum;
use raftmq_tests::metrics;

use crate::node_bin;

const QUEUES: u32 = 4;

/// Messages stored in the topic, over all queues.
async fn stored(c: &TestCluster, topic: &str) -> u64 {
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints(c), "g-count")).unwrap();
    let mut n = 0;
    for q in 0..QUEUES {
        n += consumer.query_offset(topic, q, OffsetPolicy::End).await.unwrap();
    }
    n
}

fn producer(c: &TestCluster, attempts: u32) -> Producer {
    let mut o = ProducerOptions::new(endpoints(c));
    o.max_attempts = attempts;
    Producer::new(o).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_refuses_sends_with_a_hint_and_the_sdk_gets_through() {
    let c = cluster_with_topic_tuned(node_bin(), "fc", QUEUES, &|c| c.broker.inflight_mib_max = 2).await;
    let once = producer(&c, 1);
    let body = vec![b'x'; 32 << 10];
    // Offer waves of 32 KiB sends until one finds its group's 2 MiB backlog full.
    let mut acked = 0u64;
    let mut refused: Option<ClientError> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while refused.is_none() && tokio::time::Instant::now() < deadline {
        let sends = (0..256).map(|_| once.send(Message::new("fc", body.clone())));
        for r in futures::future::join_all(sends).await {
            match r {
                Ok(_) => acked += 1,
                Err(e) if e.code() == Some(Code::TooManyRequests) => refused = Some(e),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
    }
    let refused = refused.expect("no send was refused within 60 s at a 2 MiB backlog");
    let hint = refused.retry_after().unwrap_or_else(|| panic!("no retry-after hint: {refused}"));
    assert!(hint >= Duration::from_millis(20) && hint <= Duration::from_secs(5), "{refused}");
    assert_eq!(stored(&c, "fc").await, acked, "a refused send stores nothing");

    // Every node's page shows the limit; the refusals are counted where they happened.
    let mut rejected = 0.0;
    for n in 0..3 {
        let page = metrics(&c, n).await;
        assert_eq!(
            sum(&page, "raftmq_flow_backlog_limit_bytes", &["group=\"broker-a\""]),
            (2u64 << 20) as f64
        );
        assert!(sum(&page, "raftmq_raft_term", &["group=\"nameserver\""]) >= 1.0, "{page}");
        assert!(page.contains("# TYPE raftmq_send_seconds histogram"));
        rejected += sum(&page, "raftmq_flow_rejected_total", &["reason=\"backlog\""]);
    }
    assert!(rejected >= 1.0, "the refusals are in the metrics");

    // With retries, the SDK waits out the hints and every message of a wave gets through.
    let patient = producer(&c, 40);
    let sends = (0..256).map(|_| patient.send(Message::new("fc", body.clone())));
    let results = futures::future::join_all(sends).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of 256 sends failed: {}", failed.len(), failed[0]);
    assert_eq!(stored(&c, "fc").await, acked + 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_its_memory_budget_refuses_sends() {
    let c = cluster_with_topic_tuned(node_bin(), "mem", QUEUES, &|c| c.broker.memory_budget_mib = 1).await;
    // The sampler needs a moment to see the resident memory (a send before that is stored).
    let once = producer(&c, 1);
    let accepted = std::sync::atomic::AtomicU64::new(0);
    let e = raftmq_tests::eventually(Duration::from_secs(10), "a refusal over the memory budget", || {
        let (once, accepted) = (&once, &accepted);
        async move {
            let r = once.send(Message::new("mem", "m")).await;
            if r.is_ok() {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            r.err()
        }
    })
    .await
    .unwrap();
    assert_eq!(e.code(), Some(Code::TooManyRequests), "{e}");
    assert!(e.to_string().contains("memory budget of 1 MiB"), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)), "{e}");
    assert_eq!(stored(&c, "mem").await, accepted.into_inner(), "a refused send stores nothing");
    let mut rejected = 0.0;
    for n in 0..3 {
        let page = metrics(&c, n).await;
        assert_eq!(sum(&page, "raftmq_memory_budget_bytes", &[]), (1u64 << 20) as f64);
        assert!(sum(&page, "raftmq_memory_resident_bytes", &[]) > (1u64 << 20) as f64);
        rejected += sum(&page, "raftmq_flow_rejected_total", &["reason=\"memory\""]);
    }
    assert!(rejected >= 1.0);
}
