//! `raftmq bench failover`: producers send at a fixed rate to queues of one broker group while
//! its leader is killed (SIGKILL) again and again. For each kill: the time from the kill to the
//! first acknowledged send (started after the kill) — which only the new leader can give — and
//! the sends that failed or whose outcome is unknown. At the end every acknowledged message is
//! read back: lost must be 0. Beside the producer, a push consumer and a pull consumer consume
//! the topic; for each kill the bench reports when each delivered the first message sent after
//! the kill (see [`super::resume`]).
//!
//! The topic is FIFO and every message carries a message group that hashes to a queue of the
//! chosen broker group, so a send cannot dodge the failover by landing on another group.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use clap::Args;
use raftmq_client::AdminClient;
use raftmq_client::Message;
use raftmq_client::OffsetPolicy;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::admin::GroupSpec;
use raftmq_client::admin::TopicSpec;
use serde_json::json;

use super::resume::Deliveries;
use super::resume::Via;
use super::scratch::ScratchCluster;
use super::stats::ms;
use super::stats::summarize;
use crate::broker::send::group_hash;

/// Options of `raftmq bench failover`.
#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Broker group whose leader is killed.
    #[arg(long, default_value = "broker-a")]
    pub group: String,
    /// Number of kills.
    #[arg(long, default_value_t = 20)]
    pub kills: usize,
    /// Sends per second, started on schedule whether or not earlier ones finished.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds of steady sending before each kill, after the cluster settled.
    #[arg(long, default_value_t = 2)]
    pub settle_secs: u64,
    /// Directory for the cluster's data and logs (default: a new temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One send: when it started and ended, and its body if it was acknowledged.
struct Sent {
    start: Instant,
    end: Instant,
    acked: Option<String>,
}

/// What the producer task saw, shared with the kill loop.
#[derive(Default)]
struct Log {
    started: AtomicUsize,
    sends: Mutex<Vec<Sent>>,
}

impl Log {
    fn push(&self, s: Sent) {
        self.sends.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    /// When the first send started at or after `t` was acknowledged.
    fn first_ack_since(&self, t: Instant) -> Option<Instant> {
        let sends = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        sends.iter().filter(|s| s.start >= t && s.acked.is_some()).map(|s| s.end).min()
    }

    /// Sends that were under way at some time in `[from, to)` and got no acknowledgment.
    fn failed_between(&self, from: Instant, to: Instant) -> usize {
        let sends = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        sends.iter().filter(|s| s.acked.is_none() && s.end >= from && s.start < to).count()
    }

    /// Waits until every send started has ended (or `timeout` passed).
    async fn drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.sends.lock().unwrap_or_else(|e| e.into_inner()).len();
            if done >= self.started.load(Ordering::Relaxed) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn acked(&self) -> Vec<String> {
        let sends = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        sends.iter().filter_map(|s| s.acked.clone()).collect()
    }

    fn counts(&self) -> (usize, usize) {
        let sends = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        (sends.len(), sends.iter().filter(|s| s.acked.is_some()).count())
    }
}

/// One kill's figures.
struct Kill {
    old: u64,
    new: u64,
    at: Instant,
    first_ack: Duration,
    push_resumed: Duration,
    pull_resumed: Duration,
}

/// Runs the benchmark on a fresh local 3-node cluster.
pub async fn run(args: FailoverArgs) -> anyhow::Result<()> {
    if args.rate == 0 || args.rate > 100_000 || args.kills == 0 {
        bail!("--rate must be 1-100000 sends per second and --kills above 0");
    }
    if !args.group.starts_with("broker-") {
        bail!("--group must name a broker group (broker-a, broker-b, ...), got {:?}", args.group);
    }
    let mut sc = ScratchCluster::start(args.data_dir.clone()).await?;
    let cluster = &mut sc.cluster;
    cluster.wait_balanced(Duration::from_secs(60)).await?;
    let (leader, _) = cluster.wait_leader(&args.group, None, Duration::from_secs(30)).await?;
    let status = cluster.status().await?;
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let endpoints = endpoints.join(",");

    // A FIFO topic with two queues per broker group, and a message group on the chosen one.
    let admin = AdminClient::connect(&cluster.node(leader).client_addr, Duration::from_secs(10))?;
    let topic = format!("failover-{}", std::process::id());
    let groups = status.groups.iter().filter(|g| g.id != 0).count() as u32;
    let info = admin
        .create_topic(TopicSpec {
            name: topic.clone(),
            queue_count: 2 * groups,
            message_type: "FIFO".into(),
            permission: String::new(),
            retention_secs: 0,
        })
        .await?;
    let queues: Vec<u32> =
        info.queues.iter().filter(|q| q.broker_group == args.group).map(|q| q.queue_id).collect();
    if queues.is_empty() {
        bail!("{} holds no queue of the bench topic", args.group);
    }
    let n = u64::from(2 * groups);
    let message_group = (0..)
        .map(|i| format!("mg-{i}"))
        .find(|g| queues.contains(&((group_hash(g) % n) as u32)))
        .context("no message group maps to the broker group")?;
    let queue = (group_hash(&message_group) % n) as u32;

    let deliveries = Deliveries::new();
    let (push_group, pull_group) = ("bench-failover-push", "bench-failover-pull");
    for name in [push_group, pull_group] {
        admin.create_group(GroupSpec { name: name.into(), ..Default::default() }).await?;
    }
    let push = super::resume::start_push(&endpoints, push_group, &topic, deliveries.clone()).await?;
    let pull = super::resume::start_pull(&endpoints, pull_group, &topic, queue, deliveries.clone()).await?;

    let log = Arc::new(Log::default());
    let producer = Producer::new(ProducerOptions::new(endpoints.clone()))?;
    let sending = tokio::spawn(produce(
        producer,
        topic.clone(),
        message_group,
        args.rate,
        log.clone(),
        deliveries.clone(),
    ));

    let mut kills = Vec::new();
    for i in 1..=args.kills {
        cluster.wait_balanced(Duration::from_secs(60)).await?;
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let (old, term) = cluster.wait_leader(&args.group, None, Duration::from_secs(30)).await?;
        let t0 = Instant::now();
        cluster.kill(old).await?;
        let (new, new_term) = cluster.wait_leader(&args.group, Some(old), Duration::from_secs(30)).await?;
        let deadline = t0 + Duration::from_secs(30);
        let first = loop {
            if let Some(at) = log.first_ack_since(t0) {
                break at;
            }
            if Instant::now() > deadline {
                bail!("kill {i}: no send acknowledged within 30 s of killing node {old}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let first_ack = first - t0;
        let (push_resumed, pull_resumed) = loop {
            if let (Some(a), Some(b)) = (deliveries.resumed(Via::Push, t0), deliveries.resumed(Via::Pull, t0))
            {
                break (a, b);
            }
            if Instant::now() > deadline {
                bail!("kill {i}: the consumers delivered nothing sent after the kill within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if !args.json {
            eprintln!(
                "kill {i}: node {old} (term {term}) -> node {new} (term {new_term}): first ack after {:.1} ms, push consumer resumed after {:.1} ms, pull after {:.1} ms",
                ms(first_ack),
                ms(push_resumed),
                ms(pull_resumed)
            );
        }
        kills.push(Kill { old, new, at: t0, first_ack, push_resumed, pull_resumed });
        cluster.start(old)?;
    }
    sending.abort();
    let _ = sending.await;
    pull.abort();
    push.shutdown().await;
    if !log.drained(Duration::from_secs(60)).await {
        bail!("sends still under way 60 s after the producer stopped");
    }
    cluster.wait_balanced(Duration::from_secs(60)).await?;
    // Sends under way during each outage that got no acknowledgment.
    let failed: Vec<usize> = kills.iter().map(|k| log.failed_between(k.at, k.at + k.first_ack)).collect();

    // Read the queue back: every acknowledged body must be there.
    let stored = read_back(&endpoints, &topic, queue).await?;
    let acked = log.acked();
    let lost: Vec<&String> = acked.iter().filter(|b| !stored.contains(b.as_str())).collect();
    let (sent, acks) = log.counts();
    let s = summarize(&kills.iter().map(|k| k.first_ack).collect::<Vec<_>>());
    let push_s = summarize(&kills.iter().map(|k| k.push_resumed).collect::<Vec<_>>());
    let pull_s = summarize(&kills.iter().map(|k| k.pull_resumed).collect::<Vec<_>>());
    let failed_total: usize = failed.iter().sum();
    if args.json {
        let rows: Vec<_> = kills
            .iter()
            .zip(&failed)
            .enumerate()
            .map(|(i, (k, f))| json!({"kill": i + 1, "old_leader": k.old, "new_leader": k.new, "first_ack_ms": ms(k.first_ack), "push_resumed_ms": ms(k.push_resumed), "pull_resumed_ms": ms(k.pull_resumed), "failed_or_unknown": f}))
            .collect();
        println!(
            "{}",
            json!({"group": args.group, "rate": args.rate, "kills": rows, "p50_ms": ms(s.p50), "p99_ms": ms(s.p99), "max_ms": ms(s.max), "push_resumed_p99_ms": ms(push_s.p99), "push_resumed_max_ms": ms(push_s.max), "pull_resumed_p99_ms": ms(pull_s.p99), "pull_resumed_max_ms": ms(pull_s.max), "sent": sent, "acked": acks, "failed_or_unknown": failed_total, "lost": lost.len()})
        );
    } else {
        for (i, (k, f)) in kills.iter().zip(&failed).enumerate() {
            println!(
                "kill {:>2}: node {} -> node {}: first ack after {:>7.1} ms, consumers resumed after {:>7.1} ms (push) {:>7.1} ms (pull), {f} sends failed or unknown",
                i + 1,
                k.old,
                k.new,
                ms(k.first_ack),
                ms(k.push_resumed),
                ms(k.pull_resumed)
            );
        }
        println!(
            "{} leader kills of {} at {} sends/s: first ack on the new leader after p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {sent} sent, {acks} acknowledged, {failed_total} failed or unknown during failovers, {} lost (data in {})",
            s.n,
            args.group,
            args.rate,
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            lost.len(),
            sc.dir.display()
        );
        println!(
            "consumption resumed after a kill: push consumer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; pull consumer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(push_s.p50),
            ms(push_s.p99),
            ms(push_s.max),
            ms(pull_s.p50),
            ms(pull_s.p99),
            ms(pull_s.max)
        );
    }
    sc.stop().await;
    if !lost.is_empty() {
        bail!("{} acknowledged messages lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    }
    Ok(())
}

/// Sends one message every `1 / rate` s, each in its own task, recording the outcome.
async fn produce(
    producer: Producer,
    topic: String,
    message_group: String,
    rate: u32,
    log: Arc<Log>,
    deliveries: Arc<Deliveries>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for n in 0u64.. {
        tick.tick().await;
        log.started.fetch_add(1, Ordering::Relaxed);
        let (p, log) = (producer.clone(), log.clone());
        let start = Instant::now();
        let body = deliveries.body(&topic, n, start);
        let msg = Message::new(topic.as_str(), body.clone()).with_message_group(message_group.as_str());
        tokio::spawn(async move {
            let acked = match p.send(msg).await {
                Ok(_) => Some(body),
                Err(e) => {
                    tracing::debug!(error = %e, "failover bench send failed");
                    None
                }
            };
            log.push(Sent { start, end: Instant::now(), acked });
        });
    }
}

/// Every body stored in `queue` of `topic`.
async fn read_back(endpoints: &str, topic: &str, queue: u32) -> anyhow::Result<HashSet<String>> {
    let consumer = PullConsumer::new(PullConsumerOptions::new(endpoints, "bench-failover-check"))?;
    let end = consumer.query_offset(topic, queue, OffsetPolicy::End).await?;
    let mut offset = consumer.query_offset(topic, queue, OffsetPolicy::Beginning).await?;
    let mut out = HashSet::new();
    while offset < end {
        let got = consumer.pull(topic, queue, offset, 256, Duration::ZERO).await?;
        if got.messages.is_empty() {
            bail!("pull of {topic}/{queue} at {offset} returned nothing below the end {end}");
        }
        for m in &got.messages {
            out.insert(String::from_utf8_lossy(&m.body).into_owned());
        }
        offset = got.next_offset;
    }
    Ok(out)
}
