//! `raftmq bench`: measurements against real node processes. Benchmarks are not tests: they print
//! numbers (and `--json`) for `BENCHMARKS.md`; they assert no speed. (`failover` does exit
//! non-zero when an acknowledged message is missing: a number is worthless after a loss.)

mod failover;
mod leader_kill;
mod load;
mod procstat;
mod resume;
mod scratch;
pub(crate) mod stats;

use clap::Subcommand;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Kill (SIGKILL) a group's leader repeatedly and time the election of the next one.
    LeaderKill(leader_kill::LeaderKillArgs),
    /// Kill (SIGKILL) a broker group's leader repeatedly under a fixed-rate produce: time to the
    /// first acknowledged send on the new leader, failed sends, lost messages.
    Failover(failover::FailoverArgs),
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
        BenchCommand::Failover(args) => failover::run(args).await,
        BenchCommand::Produce(args) => load::run(load::Mode::Produce, args).await,
        BenchCommand::Consume(args) => load::run(load::Mode::Consume, args).await,
        BenchCommand::E2e(args) => load::run(load::Mode::E2e, args).await,
    }
}
