//! `raftmq chaos`: the workload a chaos run drives through the cluster while `chaos/` scripts
//! inject faults, and the checker that judges the recorded history afterwards.

pub mod check;
pub mod history;
pub mod workload;

use clap::Subcommand;

/// Chaos tools.
#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Send and consume while faults are injected, recording a JSONL history.
    Workload(workload::WorkloadArgs),
    /// Judge a history: exit status 1 on loss, unexpected messages, inconsistent offsets, FIFO
    /// order violations or skipped offsets.
    Check(check::CheckArgs),
}

/// Runs a chaos tool.
pub async fn run(cmd: ChaosCommand) -> anyhow::Result<()> {
    match cmd {
        ChaosCommand::Workload(args) => workload::run(args).await,
        // Reading and judging a long history is blocking work: off the runtime's workers.
        ChaosCommand::Check(args) => tokio::task::spawn_blocking(move || check::run(args)).await?,
    }
}
