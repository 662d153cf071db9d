//! `raftmq chaos workload`: the traffic of a chaos run. Producers send at a fixed rate to a
//! normal topic and, one message at a time per message group, to a FIFO topic; pull consumers
//! read every queue of both from offset 0. Every send attempt, its outcome and every delivery go
//! to the history file, which `raftmq chaos check` judges afterwards.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use raftmq_client::AdminClient;
use raftmq_client::ClientError;
use raftmq_client::Message;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::admin::GroupSpec;
use raftmq_client::admin::TopicSpec;
use tokio::sync::Semaphore;

use super::history::Event;
use super::history::Recorder;
use crate::clock::now_ms;

/// Options of `raftmq chaos workload`.
#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// Client addresses of the cluster's nodes, comma-separated.
    #[arg(long, default_value = "127.0.0.11:8080,127.0.0.12:8080,127.0.0.13:8080")]
    pub servers: String,
    /// History file (JSON lines), appended to.
    #[arg(long)]
    pub history: PathBuf,
    /// Seconds of sending.
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Messages per second offered, both topics together (a quarter go to the FIFO topic).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds to wait, after sending stops, for every acknowledged message to be consumed.
    #[arg(long, default_value_t = 60)]
    pub drain_secs: u64,
    /// Message groups of the FIFO topic (each sends one message at a time).
    #[arg(long, default_value_t = 4)]
    pub fifo_groups: u32,
    /// Prefix of the topics (`<prefix>-normal`, `<prefix>-fifo`) and of the consumer group.
    #[arg(long, default_value = "chaos")]
    pub prefix: String,
}

/// (body, offset) pairs acknowledged but not yet consumed, and those consumed: the drain waits
/// for the first to empty. By offset, not by body alone: a body stored twice (a retried send) is
/// drained only once the acknowledged copy was read, which is what the checker asks.
#[derive(Default)]
struct Ledger {
    pending: HashSet<(String, u64)>,
    seen: HashSet<(String, u64)>,
}

impl Ledger {
    fn acked(&mut self, body: &str, offset: u64) {
        let key = (body.to_string(), offset);
        if !self.seen.contains(&key) {
            self.pending.insert(key);
        }
    }

    fn consumed(&mut self, body: String, offset: u64) {
        let key = (body, offset);
        self.pending.remove(&key);
        self.seen.insert(key);
    }
}

#[derive(Default)]
struct Counters {
    invoked: AtomicU64,
    ok: AtomicU64,
    unknown: AtomicU64,
    received: AtomicU64,
}

impl Counters {
    fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} sends, {} acknowledged, {} unknown, {} deliveries",
            n(&self.invoked),
            n(&self.ok),
            n(&self.unknown),
            n(&self.received)
        )
    }
}

struct Shared {
    rec: Recorder,
    ledger: Mutex<Ledger>,
    counters: Counters,
    stop_sending: AtomicBool,
    stop_consuming: AtomicBool,
}

impl Shared {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one attempt and records it; true if acknowledged.
    async fn attempt(
        &self,
        producer: &Producer,
        id: String,
        msg: Message,
        body: &str,
        group: Option<String>,
    ) -> bool {
        self.rec.record(Event::Invoke {
            id: id.clone(),
            topic: msg.topic.clone(),
            body: body.to_string(),
            group,
            at: now_ms(),
        });
        self.counters.invoked.fetch_add(1, Ordering::Relaxed);
        match producer.send(msg).await {
            Ok(r) => {
                self.ledger().acked(body, r.offset);
                self.rec.record(Event::Ok { id, offset: r.offset, at: now_ms() });
                self.counters.ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e @ ClientError::InvalidArgument(_)) => {
                self.rec.record(Event::Fail { id, error: e.to_string(), at: now_ms() });
                false
            }
            // An error after retries may follow an attempt that was stored: not known.
            Err(e) => {
                self.rec.record(Event::Unknown { id, error: e.to_string(), at: now_ms() });
                self.counters.unknown.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Runs the workload until it has sent for `duration_secs` and drained.
pub async fn run(args: WorkloadArgs) -> anyhow::Result<()> {
    if args.rate < 4 {
        bail!("--rate must be at least 4 messages per second, got {}", args.rate);
    }
    let normal = format!("{}-normal", args.prefix);
    let fifo = format!("{}-fifo", args.prefix);
    let group = format!("{}-check", args.prefix);
    prepare(&args.servers, &normal, &fifo, &group).await?;

    let (rec, writer) = Recorder::open(&args.history).await?;
    let shared = Arc::new(Shared {
        rec,
        ledger: Mutex::default(),
        counters: Counters::default(),
        stop_sending: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
    });
    let producer = Producer::new(ProducerOptions::new(args.servers.clone()))?;
    let consumer = PullConsumer::new(PullConsumerOptions::new(args.servers.clone(), group))?;

    let mut consumers = Vec::new();
    for topic in [&normal, &fifo] {
        let queues = retry_until(Duration::from_secs(60), || consumer.queues(topic)).await?;
        for q in queues {
            consumers.push(tokio::spawn(consume(shared.clone(), consumer.clone(), topic.clone(), q)));
        }
    }

    let mut senders = Vec::new();
    let normal_rate = args.rate - args.rate / 4;
    senders.push(tokio::spawn(send_normal(shared.clone(), producer.clone(), normal.clone(), normal_rate)));
    let per_group = (f64::from(args.rate / 4) / f64::from(args.fifo_groups.max(1))).max(0.5);
    for g in 0..args.fifo_groups {
        senders.push(tokio::spawn(send_fifo(shared.clone(), producer.clone(), fifo.clone(), g, per_group)));
    }

    let progress = tokio::spawn(progress(shared.clone()));
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    shared.stop_sending.store(true, Ordering::Relaxed);
    for s in senders {
        s.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    let drained = loop {
        if shared.ledger().pending.is_empty() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shared.stop_consuming.store(true, Ordering::Relaxed);
    for c in consumers {
        c.await?;
    }
    progress.abort();
    let pending = shared.ledger().pending.len();
    shared.rec.record(Event::End { drained, at: now_ms() });
    eprintln!(
        "[workload] done: {}; {}",
        shared.counters.summary(),
        if drained {
            "drained".to_string()
        } else {
            format!("{pending} acknowledged not consumed at the deadline")
        }
    );
    drop(shared);
    writer.await??;
    Ok(())
}

/// A topic of the workload exists before it started.
#[derive(Debug, thiserror::Error)]
#[error("topic {0} exists already: a chaos history needs fresh topics; pass another --prefix")]
struct StaleTopic(String);

/// Creates the topics and the group (already existing ones are fine), retrying while the cluster
/// starts.
async fn prepare(servers: &str, normal: &str, fifo: &str, group: &str) -> anyhow::Result<()> {
    let addrs: Vec<&str> = servers.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if addrs.is_empty() {
        bail!("--servers names no address");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut turn = 0;
    let mut created = HashSet::new();
    loop {
        let admin = AdminClient::connect(addrs[turn % addrs.len()], Duration::from_secs(5))?;
        turn += 1;
        match try_prepare(&admin, normal, fifo, group, &mut created).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is::<StaleTopic>() => return Err(e),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "cluster not ready for the workload yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => bail!("cannot create the workload's topics and group within 60 s: {e}"),
        }
    }
}

/// Creates the topics; `created` remembers which this run made, so a retry after a lost answer
/// does not take them for a previous run's.
async fn try_prepare(
    admin: &AdminClient,
    normal: &str,
    fifo: &str,
    group: &str,
    created: &mut HashSet<String>,
) -> anyhow::Result<()> {
    for (name, kind) in [(normal, "NORMAL"), (fifo, "FIFO")] {
        if created.contains(name) {
            continue;
        }
        if admin.describe_topic(name).await.is_ok() {
            // Reading an old run's messages from offset 0 would make them look unexpected.
            bail!(StaleTopic(name.to_string()));
        }
        let spec =
            TopicSpec { name: name.into(), queue_count: 8, message_type: kind.into(), ..Default::default() };
        admin.create_topic(spec).await?;
        created.insert(name.to_string());
    }
    if admin.describe_group(group).await.is_err() {
        admin
            .create_group(GroupSpec {
                name: group.into(),
                consume_from: "FIRST".into(),
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

async fn retry_until<T, F, Fut>(limit: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Normal messages at `rate` per second, each send on its own task (at most 256 at once).
async fn send_normal(shared: Arc<Shared>, producer: Producer, topic: String, rate: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let permits = Arc::new(Semaphore::new(256));
    let mut n = 0u64;
    while !shared.stop_sending.load(Ordering::Relaxed) {
        tick.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        // Named after the topic, so histories of runs with different prefixes never collide.
        let body = format!("{topic}:{n}");
        let id = format!("{topic}/{n}");
        n += 1;
        let (shared, producer, msg) =
            (shared.clone(), producer.clone(), Message::new(topic.clone(), body.clone()));
        tokio::spawn(async move {
            shared.attempt(&producer, id, msg, &body, None).await;
            drop(permit);
        });
    }
    // Wait for the sends still in flight.
    let _ = permits.acquire_many(256).await;
}

/// FIFO messages of one message group, one at a time: the next is sent only once the previous
/// was acknowledged (an unknown outcome is retried with the same body, as an application would).
async fn send_fifo(shared: Arc<Shared>, producer: Producer, topic: String, g: u32, rate: f64) {
    let gap = Duration::from_secs_f64(1.0 / rate);
    let group = format!("g{g}");
    let mut k = 0u64;
    let mut attempt = 0u64;
    while !shared.stop_sending.load(Ordering::Relaxed) {
        let body = format!("{topic}:{group}:{k}");
        let msg = Message::new(topic.clone(), body.clone()).with_message_group(group.clone());
        let id = format!("{topic}/{group}/{k}/{attempt}");
        attempt += 1;
        if shared.attempt(&producer, id, msg, &body, Some(group.clone())).await {
            k += 1;
            attempt = 0;
            tokio::time::sleep(gap).await;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Reads one queue from offset 0 until told to stop, committing the offset every second.
async fn consume(shared: Arc<Shared>, consumer: PullConsumer, topic: String, queue: u32) {
    let mut offset = 0u64;
    let mut committed = 0u64;
    let mut last_commit = Instant::now();
    while !shared.stop_consuming.load(Ordering::Relaxed) {
        match consumer.pull(&topic, queue, offset, 64, Duration::from_millis(500)).await {
            Ok(p) => {
                for m in &p.messages {
                    let body = String::from_utf8_lossy(&m.body).into_owned();
                    shared.ledger().consumed(body.clone(), m.offset);
                    shared.counters.received.fetch_add(1, Ordering::Relaxed);
                    shared.rec.record(Event::Recv {
                        topic: topic.clone(),
                        queue,
                        offset: m.offset,
                        body,
                        at: now_ms(),
                    });
                }
                offset = p.next_offset.max(offset);
            }
            Err(e) => {
                tracing::debug!(%topic, queue, error = %e, "pull failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if offset > committed && last_commit.elapsed() > Duration::from_secs(1) {
            last_commit = Instant::now();
            if consumer.commit(&topic, queue, offset).await.is_ok() {
                committed = offset;
            }
        }
    }
}

async fn progress(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tick.tick().await;
        eprintln!(
            "[workload] {}, {} acknowledged not yet consumed",
            shared.counters.summary(),
            shared.ledger().pending.len()
        );
    }
}
