//! `bench`: the 4.x producer's throughput, for BENCHMARKS.md beside `raftmq bench produce` (the
//! gRPC figure) in the same sitting. Not a test: it reports, it does not judge (it fails only when
//! a send fails or nothing was acknowledged).
//!
//! N tasks each send 1 KiB messages synchronously in a loop, so N sends are in flight at any time,
//! for SECONDS (env `RAFTMQ_BENCH_SECS`, default 20) after a 3 s warm-up whose sends are not
//! counted. Prints `ok bench: <msgs/s>, p50/p99 send latency, counts` (the count with the warm-up
//! lets `scripts/bench-remoting` divide the nodes' CPU over the whole run).

use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::DefaultMQProducer;
use tokio::time::Instant;

use crate::Ctx;
use crate::Outcome;
use crate::is_ok;
use crate::message;
use crate::producer;

const WARM_UP: Duration = Duration::from_secs(3);
const BODY_BYTES: usize = 1024;

/// What one sending task saw after the warm-up: each acknowledged send's latency, and failures.
#[derive(Default)]
struct Tally {
    /// Sends acknowledged during the warm-up.
    warm: usize,
    latencies_us: Vec<u64>,
    failures: Vec<String>,
}

pub async fn bench(ctx: &Ctx) -> Outcome {
    let secs = std::env::var("RAFTMQ_BENCH_SECS").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(20);
    let p = Arc::new(producer(ctx).await?);
    let body = "x".repeat(BODY_BYTES);
    let start = Instant::now();
    let (measure_from, end) = (start + WARM_UP, start + WARM_UP + Duration::from_secs(secs));
    let mut tasks = Vec::with_capacity(ctx.n);
    for _ in 0..ctx.n {
        let (p, m) = (p.clone(), message(ctx, "TagA", &body, &[])?);
        tasks.push(tokio::spawn(sender(p, m, measure_from, end)));
    }
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.map_err(|e| format!("a sending task ended abnormally: {e}"))?;
        all.warm += t.warm;
        all.latencies_us.extend(t.latencies_us);
        all.failures.extend(t.failures);
    }
    if let Ok(p) = Arc::try_unwrap(p) {
        let mut p = p;
        let _ = tokio::time::timeout(Duration::from_secs(2), p.shutdown()).await;
    }
    if let Some(f) = all.failures.first() {
        return Err(format!("{} sends failed, first: {f}", all.failures.len()));
    }
    let n = all.latencies_us.len();
    if n == 0 {
        return Err("no send was acknowledged after the warm-up".into());
    }
    all.latencies_us.sort_unstable();
    let pct = |q: f64| all.latencies_us[((n as f64 * q) as usize).min(n - 1)] as f64 / 1000.0;
    Ok(format!(
        "{:.0} msgs/s ({n} messages of {BODY_BYTES} B in {secs} s, {} in flight), send p50 {:.2} ms, p99 {:.2} ms; \
         acknowledged in all, warm-up included: {}",
        n as f64 / secs as f64,
        ctx.n,
        pct(0.50),
        pct(0.99),
        n + all.warm
    ))
}

/// Sends `m` again and again until `end`; sends that start after `measure_from` are tallied.
async fn sender(
    p: Arc<DefaultMQProducer>,
    m: rocketmq_model::common::message::message_single::Message,
    measure_from: Instant,
    end: Instant,
) -> Tally {
    let mut t = Tally::default();
    loop {
        let sent_at = Instant::now();
        if sent_at >= end {
            return t;
        }
        let r = p.send_with_timeout(m.clone(), crate::SEND_TIMEOUT_MS).await;
        if sent_at < measure_from {
            t.warm += usize::from(matches!(&r, Ok(Some(r)) if is_ok(r)));
            continue;
        }
        match r {
            Ok(Some(r)) if is_ok(&r) => t.latencies_us.push(sent_at.elapsed().as_micros() as u64),
            Ok(Some(r)) => t.failures.push(crate::describe(&r)),
            Ok(None) => t.failures.push("no send result".into()),
            Err(e) => t.failures.push(crate::err_text(&e)),
        }
    }
}
