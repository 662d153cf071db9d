//! `raftmq bench`: measurements against real node processes. Benchmarks are not tests: they print
//! numbers (and `--json`) for `BENCHMARKS.md`; they assert nothing.

mod leader_kill;
mod stats;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Kill (SIGKILL) a group's leader repeatedly and time the election of the next one.
    LeaderKill(leader_kill::LeaderKillArgs),
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::LeaderKill(args) => leader_kill::run(args).await,
    }
}
