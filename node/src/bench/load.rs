//! `raftmq bench produce|consume|e2e` against a running cluster.
//!
//! - produce: producers keep `--inflight` messages outstanding (closed loop), or send at `--rate`
//!   (open loop, latency measured from the scheduled send time so a stall is not hidden).
//! - consume: pull consumers read every queue of the topic from the start.
//! - e2e: both at once; latency from the send time written into each body to the pull.
//!
//! Reports msgs/s, MB/s, latency percentiles, the CPU time the node processes used per message
//! (from /proc, when their pid files are found) and their peak RSS.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use raftmq_client::AdminClient;
use raftmq_client::ClientError;
use raftmq_client::Message;
use raftmq_client::OffsetPolicy;
use raftmq_client::Producer;
use raftmq_client::ProducerOptions;
use raftmq_client::PullConsumer;
use raftmq_client::PullConsumerOptions;
use raftmq_client::admin::TopicSpec;
use serde_json::json;
use tokio::sync::Semaphore;

use super::procstat::NodeProcs;

/// Options shared by the load benchmarks.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Access points of the cluster.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub server: String,
    /// Topic (created with `--queues` queues if missing).
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Queues of the topic when the bench creates it.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Message body size, bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Producer tasks.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Messages outstanding (sent, not yet acknowledged), over all producers.
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Messages per explicit batch send (1: `Producer::send` per message, which coalesces the
    /// messages in flight to one node into shared requests).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Target rate, messages/s (0: as fast as the in-flight window allows).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seconds to run (after warm-up).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Messages sent before measuring.
    #[arg(long, default_value_t = 1000)]
    pub warmup: u64,
    /// Consumer group of consume/e2e.
    #[arg(long, default_value = "bench-consumer")]
    pub group: String,
    /// Data directory of the cluster's nodes (`<dir>/node-*/raftmq.pid`), for CPU and RSS.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn hist() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

async fn ensure_topic(args: &LoadArgs) -> anyhow::Result<()> {
    let addr = args.server.split(',').next().unwrap_or_default();
    let admin = AdminClient::connect(addr, Duration::from_secs(10))?;
    match admin.describe_topic(&args.topic).await {
        Ok(_) => Ok(()),
        Err(ClientError::Status { code: raftmq_client::proto::rocketmq::Code::TopicNotFound, .. }) => {
            admin
                .create_topic(TopicSpec {
                    name: args.topic.clone(),
                    queue_count: args.queues,
                    ..Default::default()
                })
                .await?;
            Ok(())
        }
        Err(e) => Err(e).context("cannot describe the bench topic"),
    }
}

/// Counters the progress line and the report read.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
}

fn body(size: usize) -> Vec<u8> {
    let mut b = vec![b'x'; size.max(8)];
    b[..8].copy_from_slice(&now_us().to_be_bytes());
    b
}

/// Runs producers until `stop`; records send latency into `lat`.
async fn produce(
    args: LoadArgs,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    lat: Arc<Mutex<Histogram<u64>>>,
    measuring: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut opts = ProducerOptions::new(args.server.clone());
    opts.request_timeout = Duration::from_secs(10);
    let producer = Producer::new(opts)?;
    let window = Arc::new(Semaphore::new(args.inflight.max(args.batch)));
    let batch = args.batch.max(1);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..args.producers.max(1) {
        let (producer, window, stop, counters, lat, measuring, args) = (
            producer.clone(),
            window.clone(),
            stop.clone(),
            counters.clone(),
            lat.clone(),
            measuring.clone(),
            args.clone(),
        );
        tasks.spawn(async move {
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // Open loop: send message k of this producer at start + k / (rate / producers),
                // and time it from then, waiting for the window included (a stall is not hidden).
                let planned = if args.rate > 0 {
                    let per = args.rate as f64 / args.producers.max(1) as f64;
                    let at = start + Duration::from_secs_f64(i as f64 * batch as f64 / per);
                    tokio::time::sleep_until(at.into()).await;
                    Some(at)
                } else {
                    None
                };
                i += 1;
                let Ok(permit) = window.clone().acquire_many_owned(batch as u32).await else { break };
                // Closed loop: the send starts once the window has room for it.
                let scheduled = planned.unwrap_or_else(Instant::now);
                let msgs: Vec<Message> = (0..batch)
                    .map(|_| Message::new(args.topic.clone(), Bytes::from(body(args.size))))
                    .collect();
                let (producer, counters, lat, measuring) =
                    (producer.clone(), counters.clone(), lat.clone(), measuring.clone());
                tokio::spawn(async move {
                    // One message: `send`, which coalesces concurrent sends; more: one request.
                    let r = if msgs.len() == 1 {
                        match msgs.into_iter().next() {
                            Some(m) => producer.send(m).await.map(|r| vec![r]),
                            None => Ok(Vec::new()),
                        }
                    } else {
                        producer.send_batch(msgs).await
                    };
                    let took = scheduled.elapsed().as_micros() as u64;
                    drop(permit);
                    match r {
                        Ok(receipts) => {
                            counters.sent.fetch_add(receipts.len() as u64, Ordering::Relaxed);
                            if measuring.load(Ordering::Relaxed) {
                                let _ = lat.lock().unwrap_or_else(|e| e.into_inner()).record(took.max(1));
                            }
                        }
                        Err(e) => {
                            counters.failed.fetch_add(batch as u64, Ordering::Relaxed);
                            tracing::debug!(producer = p, error = %e, "send failed");
                        }
                    }
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Let the sends in flight finish.
    let _ = window.acquire_many(args.inflight.max(args.batch) as u32).await;
    Ok(())
}

/// Pulls every queue until `stop`; records end-to-end latency (from the body's send time).
async fn consume(
    args: LoadArgs,
    from_end: bool,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    lat: Arc<Mutex<Histogram<u64>>>,
    measuring: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let consumer = PullConsumer::new(PullConsumerOptions::new(args.server.clone(), args.group.clone()))?;
    let queues = consumer.queues(&args.topic).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for q in queues {
        let (consumer, stop, counters, lat, measuring, topic) = (
            consumer.clone(),
            stop.clone(),
            counters.clone(),
            lat.clone(),
            measuring.clone(),
            args.topic.clone(),
        );
        tasks.spawn(async move {
            let policy = if from_end { OffsetPolicy::End } else { OffsetPolicy::Beginning };
            let mut offset = consumer.query_offset(&topic, q, policy).await?;
            while !stop.load(Ordering::Relaxed) {
                let pulled = match consumer.pull(&topic, q, offset, 256, Duration::from_millis(500)).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(queue = q, error = %e, "pull failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let now = now_us();
                counters.received.fetch_add(pulled.messages.len() as u64, Ordering::Relaxed);
                if measuring.load(Ordering::Relaxed) {
                    let mut h = lat.lock().unwrap_or_else(|e| e.into_inner());
                    for m in &pulled.messages {
                        if m.body.len() >= 8 {
                            let sent = u64::from_be_bytes(m.body[..8].try_into().unwrap_or_default());
                            let _ = h.record(now.saturating_sub(sent).max(1));
                        }
                    }
                }
                offset = pulled.next_offset;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Which load to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Producers only.
    Produce,
    /// Consumers only, reading what is stored.
    Consume,
    /// Producers and consumers.
    E2e,
}

/// Runs a load benchmark.
pub async fn run(mode: Mode, args: LoadArgs) -> anyhow::Result<()> {
    ensure_topic(&args).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let send_lat = Arc::new(Mutex::new(hist()));
    let e2e_lat = Arc::new(Mutex::new(hist()));
    let mut procs = NodeProcs::find(&args.data_dir);

    let mut tasks = tokio::task::JoinSet::new();
    if mode != Mode::Consume {
        tasks.spawn(produce(
            args.clone(),
            stop.clone(),
            counters.clone(),
            send_lat.clone(),
            measuring.clone(),
        ));
    }
    if mode != Mode::Produce {
        let from_end = mode == Mode::E2e;
        tasks.spawn(consume(
            args.clone(),
            from_end,
            stop.clone(),
            counters.clone(),
            e2e_lat.clone(),
            measuring.clone(),
        ));
    }
    // Warm up.
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    while mode != Mode::Consume
        && counters.sent.load(Ordering::Relaxed) < args.warmup
        && Instant::now() < warm_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let base = (
        counters.sent.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
    );
    let cpu0 = procs.cpu_secs();
    let wake0 = procs.wakeups();
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    let mut last = (t0, base.0, base.1);
    while t0.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        procs.sample_rss();
        let (s, r) = (counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed));
        if !args.quiet && !args.json {
            let dt = last.0.elapsed().as_secs_f64();
            eprint!(
                "\r[{:>4}s/{}s] sent {:>9.0}/s  received {:>9.0}/s  failed {}   ",
                t0.elapsed().as_secs(),
                args.duration,
                (s - last.1) as f64 / dt,
                (r - last.2) as f64 / dt,
                counters.failed.load(Ordering::Relaxed) - base.2
            );
        }
        last = (Instant::now(), s, r);
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = procs.cpu_secs();
    let wake1 = procs.wakeups();
    let sent = counters.sent.load(Ordering::Relaxed) - base.0;
    let received = counters.received.load(Ordering::Relaxed) - base.1;
    let failed = counters.failed.load(Ordering::Relaxed) - base.2;
    stop.store(true, Ordering::Relaxed);
    if !args.quiet && !args.json {
        eprintln!();
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "bench task failed");
        }
    }
    let msgs = if mode == Mode::Consume { received } else { sent };
    let rate = msgs as f64 / elapsed;
    let mbps = rate * args.size as f64 / 1e6;
    let cpu_us_per_msg = match (cpu0, cpu1) {
        (Some(a), Some(b)) if msgs > 0 => Some((b - a) * 1e6 / msgs as f64),
        _ => None,
    };
    let wakeups_per_msg = match (wake0, wake1) {
        (Some(a), Some(b)) if msgs > 0 => Some(b.saturating_sub(a) as f64 / msgs as f64),
        _ => None,
    };
    let s = send_lat.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let e = e2e_lat.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let report = json!({
        "mode": format!("{mode:?}").to_lowercase(),
        "size": args.size, "producers": args.producers, "inflight": args.inflight, "batch": args.batch, "rate_target": args.rate,
        "seconds": elapsed, "messages": msgs, "failed": failed, "received": received,
        "msgs_per_s": rate.round(), "mb_per_s": (mbps * 10.0).round() / 10.0,
        "send_ms": if s.is_empty() { json!(null) } else { json!({"p50": pct(&s, 0.5), "p99": pct(&s, 0.99), "p999": pct(&s, 0.999), "max": s.max() as f64 / 1000.0}) },
        "e2e_ms": if e.is_empty() { json!(null) } else { json!({"p50": pct(&e, 0.5), "p99": pct(&e, 0.99), "p999": pct(&e, 0.999), "max": e.max() as f64 / 1000.0}) },
        "node_cpu_us_per_msg": cpu_us_per_msg.map(|c| (c * 10.0).round() / 10.0),
        "node_rss_mib_max": procs.rss_max_mib(),
        "node_wakeups_per_msg": wakeups_per_msg.map(|w| (w * 10.0).round() / 10.0),
        "node_pids": procs.pids(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{mode:?}: {:.0} msgs/s, {:.1} MB/s over {:.1} s ({msgs} messages, {failed} failed)",
            rate, mbps, elapsed
        );
        if !s.is_empty() {
            println!(
                "  send latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                pct(&s, 0.5),
                pct(&s, 0.99),
                pct(&s, 0.999),
                s.max() as f64 / 1000.0
            );
        }
        if !e.is_empty() {
            println!(
                "  send→pull latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                pct(&e, 0.5),
                pct(&e, 0.99),
                pct(&e, 0.999),
                e.max() as f64 / 1000.0
            );
        }
        match cpu_us_per_msg {
            Some(c) => println!("  node CPU: {c:.1} µs per message (all nodes together)"),
            None => println!("  node CPU: unknown (no pid files under {})", args.data_dir.display()),
        }
        if let Some(w) = wakeups_per_msg {
            println!("  node thread wake-ups: {w:.1} per message (voluntary context switches, all nodes)");
        }
        if let Some(r) = procs.rss_max_mib() {
            println!("  node RSS: max {r} MiB");
        }
    }
    Ok(())
}
