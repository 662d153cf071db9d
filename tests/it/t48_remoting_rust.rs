//! The pure-Rust RocketMQ 4.x client (`rocketmq-client-rust` 1.0.x, from crates.io) against a
//! 3-node cluster's Remoting ports, one scenario per test (`tests/compat/rust`): sync, async,
//! oneway and batch sends; push consumers with a tag filter, with SQL92, broadcasting, orderly;
//! a lite pull consumer; a transaction producer with check-back; delay levels; consume failure
//! → retry with growing reconsume times → dead-letter queue.

use std::time::Duration;

use raftmq_tests::cluster_with_topic_tuned;
use raftmq_tests::namesrv_addr;
use raftmq_tests::run_compat;
use raftmq_tests::rust_compat;

use crate::node_bin;

/// Runs `scenario` against a fresh cluster with topic `topic` (8 queues).
async fn scenario(scenario: &str, topic: &str, n: &str) -> String {
    let bin = rust_compat().await;
    let c = cluster_with_topic_tuned(node_bin(), topic, 8, &|c| {
        c.broker.transaction_check_secs = 1;
        c.broker.retry_delays_ms = vec![1000, 1000, 1000];
    })
    .await;
    let ns = namesrv_addr(&c);
    let group = format!("{topic}-group");
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args([scenario, &ns, topic, &group, n]).env("HOME", c.dir());
    run_compat(cmd, Duration::from_secs(180), &format!("ok {scenario}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_sends_every_way() {
    scenario("send", "rs-send", "20").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_filters_by_tag() {
    scenario("tags", "rs-tags", "20").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_filters_by_sql92() {
    scenario("sql", "rs-sql", "10").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_broadcasts() {
    scenario("broadcast", "rs-bcast", "10").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_consumes_in_order() {
    scenario("orderly", "rs-order", "40").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_lite_pulls() {
    scenario("litepull", "rs-lite", "20").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_transactions_with_check_back() {
    scenario("transaction", "rs-tx", "4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_delay_levels() {
    scenario("delay", "rs-delay", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_4x_client_retries_then_dead_letters() {
    scenario("retry", "rs-retry", "1").await;
}
