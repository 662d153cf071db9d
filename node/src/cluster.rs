//! `raftmq cluster`: a whole cluster on one machine, one child process per node.
//!
//! It writes (or reads) one config file per node and starts `raftmq node --config <file>` for
//! each: the same configs a real deployment uses. Ctrl-C (or SIGTERM) stops every node cleanly.
//! A node that dies on its own is reported and left down (chaos scripts restart nodes themselves),
//! and its data stays, so a second start reuses it.

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use clap::Args;

use crate::local_cluster::LocalCluster;
use crate::local_cluster::Output;
use crate::local_cluster::default_ports;
use crate::local_cluster::write_configs;

/// `raftmq cluster` options.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Where nodes keep their data (`<dir>/node-<id>`) and generated configs (`<dir>/cluster`).
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Number of broker groups.
    #[arg(long, default_value_t = 2)]
    pub broker_groups: u32,
    /// Use these node configs (`*.toml`, one per node, in node-id order) instead of generating them.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// With `--config-dir`: run the configs on this machine, replacing host names in their
    /// addresses (`node1=127.0.0.11,node2=127.0.0.12,node3=127.0.0.13` for `deploy/`) and keeping
    /// each node's data in `<data-dir>/node-<id>`; the rewritten configs go to `<data-dir>/cluster`.
    #[arg(long, requires = "config_dir")]
    pub host_map: Option<String>,
}

/// The configs of `files` with hosts replaced by `map` and data under `data_dir`, written to
/// `data_dir/cluster`; every other setting as in the originals.
fn mapped_configs(files: &[PathBuf], map: &str, data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let map = crate::config::parse_host_map(map).map_err(anyhow::Error::msg)?;
    let out = data_dir.join("cluster");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for f in files {
        let mut raw = crate::config::RawConfig::load(f).map_err(anyhow::Error::msg)?;
        raw.map_hosts(&map);
        let id = raw.node_id.with_context(|| format!("{}: node_id is missing", f.display()))?;
        raw.data_dir = Some(data_dir.join(format!("node-{id}")));
        let path = out.join(format!("node-{id}.toml"));
        let header = format!("{} with --host-map applied; rewritten on start", f.display());
        crate::local_cluster::write_config(&path, &header, &raw)?;
        written.push(path);
    }
    Ok(written)
}

fn config_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read config dir {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.toml node configs in {}", dir.display());
    }
    Ok(files)
}

/// Starts the nodes and supervises them until Ctrl-C or SIGTERM.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 9 {
        bail!("--nodes must be 1-9 (node i listens on 708i, 808i and 987(5+i)), got {}", args.nodes);
    }
    let files = match (&args.config_dir, &args.host_map) {
        (Some(dir), Some(map)) => mapped_configs(&config_files(dir)?, map, &args.data_dir)?,
        (Some(dir), None) => config_files(dir)?,
        // A development cluster creates topics on first use, as Apache RocketMQ's quick start
        // expects (its producer sends to `TopicTest` without creating it).
        (None, _) => write_configs(&args.data_dir, &default_ports(args.nodes), args.broker_groups, &|c| {
            c.broker.auto_create_topics = true;
        })?,
    };
    let exe = std::env::current_exe().context("cannot find the raftmq executable")?;
    let mut cluster = LocalCluster::new(&exe, &files, |_| Output::Prefixed)?;
    cluster.start_all()?;
    let clients: Vec<&str> = cluster.nodes.iter().map(|n| n.client_addr.as_str()).collect();
    let remoting: Vec<&str> = cluster.nodes.iter().map(|n| n.remoting_addr.as_str()).collect();
    eprintln!(
        "[cluster] {} nodes from {}; gRPC clients at {}; 4.x clients namesrvAddr={}; try `raftmq admin cluster status`; Ctrl-C stops them",
        files.len(),
        files[0].parent().map(|p| p.display().to_string()).unwrap_or_default(),
        clients.join(", "),
        remoting.join(";")
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut reported = vec![false; cluster.nodes.len()];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for i in 0..cluster.nodes.len() {
                    let id = i as u64 + 1;
                    if !reported[i] && let Ok(Some(status)) = cluster.try_wait(id).await {
                        reported[i] = true;
                        eprintln!("[cluster] node-{id} exited ({status}); restart it with: chaos/restart node{id} (or raftmq node --config {})", files[i].display());
                    }
                }
            }
        }
    }
    eprintln!("[cluster] stopping");
    for id in 1..=cluster.nodes.len() as u64 {
        let result = if reported[id as usize - 1] {
            // Restarted outside this process (chaos/restart): stop it through its pid file.
            stop_adopted(&cluster.nodes[id as usize - 1].config, Duration::from_secs(15)).await
        } else {
            cluster.stop(id, Duration::from_secs(15)).await
        };
        match result {
            Ok(()) => eprintln!("[cluster] node-{id} stopped"),
            Err(e) => eprintln!("[cluster] {e}"),
        }
    }
    Ok(())
}

/// Stops a node this process did not start, found through `raftmq.pid` in its data directory:
/// SIGCONT (it may be paused), SIGTERM, then SIGKILL after `timeout`.
async fn stop_adopted(config: &Path, timeout: Duration) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    let raw = crate::config::RawConfig::load(config).map_err(anyhow::Error::msg)?;
    let Some(dir) = raw.data_dir else { return Ok(()) };
    let Some(pid) = crate::server::read_pid(&dir) else { return Ok(()) };
    let pid = Pid::from_raw(pid as i32);
    // A stale pid file may name some other process by now: only signal `raftmq node --config
    // <this config>`.
    // The path may be spelled differently (relative, absolute): compare `<dir>/<file>`.
    let tail: PathBuf = config.iter().rev().take(2).collect::<Vec<_>>().into_iter().rev().collect();
    let want = tail.as_os_str().as_encoded_bytes();
    let is_raftmq = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        args.first().is_some_and(|exe| exe.ends_with(b"raftmq"))
            && args.contains(&b"node".as_slice())
            && args.iter().any(|a| a.ends_with(want))
    });
    let alive = || kill(pid, None).is_ok() && !is_zombie(pid.as_raw());
    if !is_raftmq {
        return Ok(());
    }
    if !alive() {
        return Ok(());
    }
    let _ = kill(pid, Signal::SIGCONT);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = std::time::Instant::now() + timeout;
    while alive() {
        if std::time::Instant::now() > deadline {
            let _ = kill(pid, Signal::SIGKILL);
            bail!("node (pid {pid}) did not stop within {timeout:?} of SIGTERM; killed it");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false)
}
