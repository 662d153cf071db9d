//! `raftmq bench leader-kill`: SIGKILL a group's leader, time until the survivors agree on a new
//! one, restart the victim, let it catch up, repeat.

use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::scratch::ScratchCluster;
use super::stats::ms;
use super::stats::summarize;

/// Options of `raftmq bench leader-kill`.
#[derive(Debug, Args)]
pub struct LeaderKillArgs {
    /// Group whose leader is killed (`nameserver`, `broker-a`, ...).
    #[arg(long, default_value = "nameserver")]
    pub group: String,
    /// Number of kills.
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// Seconds to let the cluster settle after each restart.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// Directory for the cluster's data and logs (default: a new temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark on a fresh local 3-node cluster.
pub async fn run(args: LeaderKillArgs) -> anyhow::Result<()> {
    let mut sc = ScratchCluster::start(args.data_dir.clone()).await?;
    let cluster = &mut sc.cluster;
    let start = Duration::from_secs(30);
    cluster.wait_leader(&args.group, None, start).await?;

    let mut samples = Vec::new();
    let mut rows = Vec::new();
    for i in 1..=args.kills {
        let (old, term) = cluster.wait_leader(&args.group, None, start).await?;
        let t0 = Instant::now();
        cluster.kill(old).await?;
        let (new, new_term) = cluster.wait_leader(&args.group, Some(old), Duration::from_secs(30)).await?;
        let took = t0.elapsed();
        if !args.json {
            eprintln!(
                "kill {i}: leader {old} (term {term}) -> {new} (term {new_term}) in {:.1} ms",
                ms(took)
            );
        }
        samples.push(took);
        rows.push(json!({"kill": i, "old_leader": old, "old_term": term, "new_leader": new, "new_term": new_term, "ms": ms(took)}));
        cluster.start(old)?;
        // Wait for every replica to agree on the term again, then let heartbeats settle.
        cluster.wait_leader(&args.group, None, start).await?;
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    }
    let s = summarize(&samples);
    if args.json {
        println!(
            "{}",
            json!({"group": args.group, "kills": rows, "p50_ms": ms(s.p50), "p99_ms": ms(s.p99), "max_ms": ms(s.max)})
        );
    } else {
        println!(
            "{} leader kills of {}: new leader after p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (cluster data in {})",
            s.n,
            args.group,
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            sc.dir.display()
        );
    }
    sc.stop().await;
    Ok(())
}
