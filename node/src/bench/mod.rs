//! `raftmq bench`: measurements against real node processes. Benchmarks are not tests: they print
//! numbers (and `--json`) for `BENCHMARKS.md`; they assert nothing.

mod leader_kill;
mod load;
mod procstat;
pub(crate) mod stats;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Kill (SIGKILL) a group's leader repeatedly and time the election of the next one.
    LeaderKill(leader_kill::LeaderKillArgs),
    /// Produce to a running cluster: msgs/s, MB/s, send latency, node CPU per message.
    Produce(load::LoadArgs),
    /// Consume what a topic holds, from the start.
    Consume(load::LoadArgs),
    /// Produce and consume at once: send→pull latency.
    E2e(load::LoadArgs),
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::LeaderKill(args) => leader_kill::run(args).await,
        BenchCommand::Produce(args) => load::run(load::Mode::Produce, args).await,
        BenchCommand::Consume(args) => load::run(load::Mode::Consume, args).await,
        BenchCommand::E2e(args) => load::run(load::Mode::E2e, args).await,
    }
}
