//! `raftmq cluster`: a whole cluster on one machine, one child process per node.
//!
//! It writes (or reads) one config file per node and starts `raftmq node --config <file>` for
//! each: the same configs a real deployment uses. Ctrl-C (or SIGTERM) stops every node cleanly.
//! A node that dies on its own is reported and left down (chaos scripts restart nodes themselves),
//! and its data stays, so a second start reuses it.

use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use clap::Args;
use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use tokio::io::AsyncBufReadExt;
use tokio::io::BufReader;
use tokio::process::Child;
use tokio::process::Command;

use crate::config::RawConfig;
use crate::config::default_members;

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
    /// Use these node configs (`*.toml`, one per node) instead of generating them.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
}

/// Writes the default config of each node of a local cluster; returns the files.
pub fn write_configs(data_dir: &Path, nodes: u64, broker_groups: u32) -> anyhow::Result<Vec<PathBuf>> {
    let dir = data_dir.join("cluster");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let members = default_members(nodes);
    let mut files = Vec::new();
    for m in &members {
        let raw = RawConfig {
            node_id: Some(m.id),
            data_dir: Some(data_dir.join(format!("node-{}", m.id))),
            raft_addr: Some(m.raft_addr.clone()),
            client_addr: Some(m.client_addr.clone()),
            advertise_raft_addr: None,
            advertise_client_addr: None,
            broker_groups: Some(broker_groups),
            initial_members: members.clone(),
            raft: Default::default(),
            log: Default::default(),
        };
        let text = toml::to_string_pretty(&raw)?;
        let path = dir.join(format!("node-{}.toml", m.id));
        std::fs::write(
            &path,
            format!("# written by `raftmq cluster`; edit freely, it is rewritten on start\n{text}"),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        files.push(path);
    }
    Ok(files)
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

struct NodeProcess {
    name: String,
    child: Child,
}

fn spawn(exe: &Path, config: &Path) -> anyhow::Result<NodeProcess> {
    let name = config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "node".into());
    let mut child = Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    for (pipe, label) in [
        (child.stdout.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>), "out"),
        (child.stderr.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>), "err"),
    ] {
        let Some(pipe) = pipe else { continue };
        let prefix = format!("[{name}] ");
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if label == "err" { eprintln!("{prefix}{line}") } else { println!("{prefix}{line}") }
            }
        });
    }
    Ok(NodeProcess { name, child })
}

/// Starts the nodes and supervises them until Ctrl-C or SIGTERM.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let files = match &args.config_dir {
        Some(dir) => config_files(dir)?,
        None => write_configs(&args.data_dir, args.nodes, args.broker_groups)?,
    };
    let exe = std::env::current_exe().context("cannot find the raftmq executable")?;
    let mut nodes = Vec::new();
    for f in &files {
        let raw = RawConfig::load(f).map_err(anyhow::Error::msg)?;
        raw.clone().validate().map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        nodes.push(spawn(&exe, f)?);
    }
    eprintln!(
        "[cluster] started {} nodes from {}; clients: 127.0.0.1:8081..; admin: raftmq admin cluster status; Ctrl-C stops them",
        nodes.len(),
        files.first().and_then(|f| f.parent()).map(|p| p.display().to_string()).unwrap_or_default()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut alive: Vec<bool> = vec![true; nodes.len()];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (i, n) in nodes.iter_mut().enumerate() {
                    if alive[i] && let Ok(Some(status)) = n.child.try_wait() {
                        alive[i] = false;
                        eprintln!("[cluster] {} exited ({status}); restart it with: raftmq node --config {}", n.name, files[i].display());
                    }
                }
                if alive.iter().all(|a| !a) {
                    bail!("every node exited");
                }
            }
        }
    }
    eprintln!("[cluster] stopping");
    for n in &nodes {
        if let Some(pid) = n.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for n in &mut nodes {
        match tokio::time::timeout(Duration::from_secs(15), n.child.wait()).await {
            Ok(Ok(status)) => eprintln!("[cluster] {} stopped ({status})", n.name),
            _ => {
                eprintln!("[cluster] {} did not stop in 15 s; killing it", n.name);
                let _ = n.child.kill().await;
            }
        }
    }
    Ok(())
}
