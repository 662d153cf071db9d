//! The `raftmq` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clap::Subcommand;

use crate::admin::cli::AdminArgs;
use crate::cluster::ClusterArgs;
use crate::config::RawConfig;

/// raftmq: a RocketMQ-compatible message queue where every piece of state is replicated by Raft.
#[derive(Debug, Parser)]
#[command(name = "raftmq", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one node.
    Node(NodeArgs),
    /// Run a whole cluster on this machine (one process per node).
    Cluster(ClusterArgs),
    /// Administer a running cluster.
    Admin(AdminArgs),
    /// Measure (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Chaos runs: the workload and the history checker (see chaos/README.md).
    #[command(subcommand)]
    Chaos(crate::chaos::ChaosCommand),
}

/// `raftmq node` options. Flags override the environment, which overrides the file.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// Config file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// This node's id.
    #[arg(long)]
    node_id: Option<u64>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Internal (peer) listen address.
    #[arg(long)]
    raft_addr: Option<String>,
    /// Client listen address.
    #[arg(long)]
    client_addr: Option<String>,
    /// Export spans over OTLP/gRPC to this collector (`http://host:4317`); overrides
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` and `[log] otlp_endpoint`.
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Check the configuration, print it and exit.
    #[arg(long)]
    check: bool,
}

fn node_config(args: &NodeArgs) -> anyhow::Result<crate::config::NodeConfig> {
    let mut raw = match &args.config {
        Some(path) => RawConfig::load(path).map_err(anyhow::Error::msg)?,
        None => RawConfig::from_toml("").map_err(anyhow::Error::msg)?,
    };
    raw.apply_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
    if let Some(v) = args.node_id {
        raw.node_id = Some(v);
    }
    if let Some(v) = &args.data_dir {
        raw.data_dir = Some(v.clone());
    }
    if let Some(v) = &args.raft_addr {
        raw.raft_addr = Some(v.clone());
    }
    if let Some(v) = &args.client_addr {
        raw.client_addr = Some(v.clone());
    }
    if let Some(v) = &args.otlp_endpoint {
        raw.log.otlp_endpoint = Some(v.clone());
    }
    let origin = args.config.as_ref().map_or("the command line".to_string(), |p| p.display().to_string());
    raw.validate().map_err(|e| anyhow::anyhow!("invalid configuration ({origin}): {e}"))
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Entry point of the `raftmq` binary: runs the command; on failure prints the chain of causes
/// on one line (no backtrace: the message says what to fix) and exits with status 1.
pub fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Marks a node that already ran itself again for the arena cap, so it never does twice (glibc
/// drops `MALLOC_*` variables for setuid or file-capability binaries).
const REEXEC_MARK: &str = "RAFTMQ_ARENA_CAP_SET";

/// Caps glibc's malloc arenas at two for a node. glibc gives threads that allocate under
/// contention arenas of their own (up to 8 per CPU) and keeps freed memory in them: over a 60 s
/// load run and the end-to-end runs after it a node's RSS peaked at 549-613 MiB, at 319-477 MiB
/// with two arenas, at the same throughput.
/// glibc reads the cap from the environment when malloc initializes, so a node started without
/// it runs itself again, once, with it set (same process id, same arguments, same `argv[0]`). A
/// cap the user set is kept.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() && std::env::var_os(REEXEC_MARK).is_none() {
        use std::os::unix::process::CommandExt;
        let err = match std::env::current_exe() {
            Ok(exe) => std::process::Command::new(exe)
                .arg0(std::env::args_os().next().unwrap_or_default())
                .args(std::env::args_os().skip(1))
                .env("MALLOC_ARENA_MAX", "2")
                .env(REEXEC_MARK, "1")
                .exec(),
            Err(e) => e,
        };
        eprintln!("warning: cannot run again with MALLOC_ARENA_MAX=2 ({err}); memory use may be higher");
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A node's config is read once, before the runtime: it says how many async workers the node
    // gets (nodes sharing a machine, as in `raftmq cluster`, do better with fewer each); other
    // commands take tokio's default.
    let mut node = None;
    if let Cmd::Node(args) = &cli.command {
        cap_malloc_arenas();
        node = Some(node_config(args)?);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(config) = &node {
        builder.worker_threads(config.worker_threads);
    }
    let runtime = builder.enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Cmd::Node(args) => {
                let config = match node {
                    Some(config) => config,
                    None => node_config(&args)?,
                };
                if args.check {
                    println!("configuration OK: {config:#?}");
                    return Ok(());
                }
                let export = config.otlp_endpoint.as_ref().map(|endpoint| crate::telemetry::Export {
                    endpoint: endpoint.clone(),
                    service_name: config.service_name.clone(),
                    instance: format!("node-{}", config.node_id),
                });
                let telemetry =
                    crate::telemetry::init(&config.log_level, export.as_ref()).map_err(anyhow::Error::msg)?;
                let result = crate::server::run(config, shutdown_signal()).await;
                telemetry.shutdown().await;
                result?;
                Ok(())
            }
            Cmd::Cluster(args) => crate::cluster::run(args).await,
            Cmd::Admin(args) => crate::admin::cli::run(args).await,
            Cmd::Bench(cmd) => crate::bench::run(cmd).await,
            Cmd::Chaos(cmd) => crate::chaos::run(cmd).await,
        }
    })
}
