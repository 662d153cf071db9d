//! Node processes on this machine: started from config files, killed, stopped, restarted and
//! watched. Shared by `raftmq cluster`, `raftmq bench` and the integration tests, so they all
//! run exactly what a user runs.

use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use raftmq_client::AdminClient;
use raftmq_proto::admin as pb;
use tokio::io::AsyncBufReadExt;
use tokio::io::BufReader;
use tokio::process::Child;
use tokio::process::Command;

use crate::config::MemberConfig;
use crate::config::RawConfig;

/// Where a node's output goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// Appended to this file.
    File(PathBuf),
    /// Printed by this process, each line prefixed with `[node-<id>]`.
    Prefixed,
}

/// One node of a local cluster.
#[derive(Debug)]
pub struct LocalNode {
    /// Node id.
    pub id: u64,
    /// Its config file.
    pub config: PathBuf,
    /// Its client address.
    pub client_addr: String,
    /// Its internal address.
    pub raft_addr: String,
    /// Its Remoting address (RocketMQ 4.x clients).
    pub remoting_addr: String,
    /// Where its output goes.
    pub output: Output,
    child: Option<Child>,
}

impl LocalNode {
    /// The node whose config is at `path`, which must be node `id`; not started.
    fn load(path: &Path, id: u64, output: impl Fn(u64) -> Output) -> anyhow::Result<Self> {
        let raw = RawConfig::load(path).map_err(anyhow::Error::msg)?;
        let cfg = raw.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if cfg.node_id != id {
            bail!("{}: expected node_id {id} (configs are taken in node-id order)", path.display());
        }
        Ok(LocalNode {
            id,
            config: path.to_path_buf(),
            client_addr: cfg.client_advertise,
            raft_addr: cfg.raft_advertise,
            remoting_addr: cfg.remoting_advertise,
            output: output(id),
            child: None,
        })
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The process id, if started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// An admin client of this node.
    pub fn admin(&self, timeout: Duration) -> AdminClient {
        // Addresses come from validated configs.
        AdminClient::connect(&self.client_addr, timeout).unwrap_or_else(|e| panic!("node {}: {e}", self.id))
    }
}

/// Node configs for an `n`-node cluster under `dir`: node *i* keeps its data in `dir/node-i`.
/// `ports` gives each node's ports; see [`default_ports`] and [`free_ports`].
/// `tune` may change each config before it is written.
pub fn write_configs(
    dir: &Path,
    ports: &[Ports],
    broker_groups: u32,
    tune: &dyn Fn(&mut RawConfig),
) -> anyhow::Result<Vec<PathBuf>> {
    let cfg_dir = dir.join("cluster");
    std::fs::create_dir_all(&cfg_dir).with_context(|| format!("cannot create {}", cfg_dir.display()))?;
    let members: Vec<MemberConfig> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| MemberConfig {
            id: i as u64 + 1,
            raft_addr: format!("127.0.0.1:{}", p.raft),
            client_addr: format!("127.0.0.1:{}", p.client),
        })
        .collect();
    let mut files = Vec::new();
    for (m, p) in members.iter().zip(ports) {
        let mut raw = RawConfig {
            node_id: Some(m.id),
            data_dir: Some(dir.join(format!("node-{}", m.id))),
            raft_addr: Some(m.raft_addr.clone()),
            client_addr: Some(m.client_addr.clone()),
            advertise_raft_addr: None,
            advertise_client_addr: None,
            remoting_addr: Some(format!("127.0.0.1:{}", p.remoting)),
            advertise_remoting_addr: None,
            broker_groups: Some(broker_groups),
            // The nodes share this machine's CPUs: each gets its share, at least one worker (on
            // 2 cores and 3 nodes, one: a third fewer thread wake-ups per synchronous send and
            // the same throughput as two, measured in BENCHMARKS.md, issue 18).
            worker_threads: Some(
                (std::thread::available_parallelism().map_or(2, |n| n.get()) / ports.len().max(1)).max(1),
            ),
            initial_members: members.clone(),
            raft: Default::default(),
            broker: Default::default(),
            log: Default::default(),
        };
        tune(&mut raw);
        let path = cfg_dir.join(format!("node-{}.toml", m.id));
        write_config(&path, "written by raftmq; edit freely, it is rewritten on start", &raw)?;
        files.push(path);
    }
    Ok(files)
}

/// Writes `raw` as TOML to `path` under a `# header` line.
pub fn write_config(path: &Path, header: &str, raw: &RawConfig) -> anyhow::Result<()> {
    let text = format!("# {header}\n{}", toml::to_string_pretty(raw)?);
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The ports of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Internal (Raft) port.
    pub raft: u16,
    /// Client port (RocketMQ gRPC and admin).
    pub client: u16,
    /// Remoting port (RocketMQ 4.x clients).
    pub remoting: u16,
}

/// The documented ports of `raftmq cluster`: node *i* uses 708*i*, 808*i* and 987(5+*i*), so
/// 4.x clients take `namesrvAddr=127.0.0.1:9876;127.0.0.1:9877;127.0.0.1:9878`.
pub fn default_ports(n: u64) -> Vec<Ports> {
    (1..=n as u16).map(|i| Ports { raft: 7080 + i, client: 8080 + i, remoting: 9875 + i }).collect()
}

/// Free ports on 127.0.0.1, three per node (bound, then released just before the nodes start).
/// They are taken below the kernel's ephemeral range when it leaves room: a port of the
/// ephemeral range can be taken by any outgoing connection while its node is down for a restart,
/// which then fails with "address already in use".
pub fn free_ports(n: u64) -> anyhow::Result<Vec<Ports>> {
    let listeners: Vec<TcpListener> = (0..3 * n).map(|_| bind_free()).collect::<Result<_, _>>()?;
    let ports: Vec<u16> =
        listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
    Ok(ports.chunks(3).map(|p| Ports { raft: p[0], client: p[1], remoting: p[2] }).collect())
}

/// A listener on a free port: below the ephemeral range if possible (a walk from a point that
/// depends on the process id, shared by the process's threads so they never pick the same port),
/// else wherever the kernel puts it.
fn bind_free() -> anyhow::Result<TcpListener> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    if let Some((low, high)) = below_ephemeral() {
        let span = u32::from(high - low);
        let start = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span.min(2000) {
            let step = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = low + (start.wrapping_add(step) % span) as u16;
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                return Ok(l);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")
}

/// Ports from 20000 up to the start of the kernel's ephemeral range, when that leaves 1000 or more
/// (read once per process).
fn below_ephemeral() -> Option<(u16, u16)> {
    static RANGE: std::sync::OnceLock<Option<(u16, u16)>> = std::sync::OnceLock::new();
    *RANGE.get_or_init(|| {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let low: u16 = range.split_whitespace().next()?.parse().ok()?;
        (low >= 21_000).then_some((20_000, low))
    })
}

/// A set of node processes started from config files.
pub struct LocalCluster {
    bin: PathBuf,
    /// The nodes; `nodes[i].id == i + 1`.
    pub nodes: Vec<LocalNode>,
}

impl LocalCluster {
    /// A cluster of the nodes in `configs` (in node-id order), run with `bin`; none started yet.
    pub fn new(bin: &Path, configs: &[PathBuf], output: impl Fn(u64) -> Output) -> anyhow::Result<Self> {
        let mut nodes = Vec::new();
        for (i, path) in configs.iter().enumerate() {
            nodes.push(LocalNode::load(path, i as u64 + 1, &output)?);
        }
        Ok(Self { bin: bin.to_path_buf(), nodes })
    }

    /// Writes the config of one more node (the next id, `ports` for its addresses, data in
    /// `dir/node-<id>`), copied from node 1's config, and adds it, not started.
    /// It is not an initial member: it waits to be added (`raftmq admin node add`).
    pub fn add_node(
        &mut self,
        dir: &Path,
        ports: Ports,
        output: impl Fn(u64) -> Output,
    ) -> anyhow::Result<u64> {
        let template = &self.nodes.first().context("no node to copy the config of")?.config;
        let mut raw = RawConfig::load(template).map_err(anyhow::Error::msg)?;
        let id = self.nodes.len() as u64 + 1;
        raw.node_id = Some(id);
        raw.data_dir = Some(dir.join(format!("node-{id}")));
        raw.raft_addr = Some(format!("127.0.0.1:{}", ports.raft));
        raw.client_addr = Some(format!("127.0.0.1:{}", ports.client));
        raw.remoting_addr = Some(format!("127.0.0.1:{}", ports.remoting));
        let path = dir.join("cluster").join(format!("node-{id}.toml"));
        write_config(&path, "written by raftmq: a node added to the cluster", &raw)?;
        self.nodes.push(LocalNode::load(&path, id, &output)?);
        Ok(id)
    }

    fn node_mut(&mut self, id: u64) -> anyhow::Result<&mut LocalNode> {
        self.nodes.get_mut((id as usize).wrapping_sub(1)).with_context(|| format!("no node {id}"))
    }

    /// The node with id `id`.
    pub fn node(&self, id: u64) -> &LocalNode {
        &self.nodes[(id - 1) as usize]
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in 1..=self.nodes.len() as u64 {
            self.start(id)?;
        }
        Ok(())
    }

    /// Starts (or restarts) node `id`.
    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let bin = self.bin.clone();
        let node = self.node_mut(id)?;
        if node.is_running() {
            bail!("node {id} is already running");
        }
        let mut cmd = Command::new(&bin);
        cmd.arg("node").arg("--config").arg(&node.config).kill_on_drop(true);
        match &node.output {
            Output::File(path) => {
                let log = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
                cmd.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
            }
            Output::Prefixed => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        let mut child = cmd.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        if let Output::Prefixed = node.output {
            let prefix = format!("[node-{id}] ");
            if let Some(out) = child.stdout.take() {
                let prefix = prefix.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(out).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        println!("{prefix}{line}");
                    }
                });
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(async move {
                    let mut lines = BufReader::new(err).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        eprintln!("{prefix}{line}");
                    }
                });
            }
        }
        node.child = Some(child);
        Ok(())
    }

    /// SIGKILLs node `id`: a crash, nothing flushed on the way out.
    pub async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        if let Some(mut c) = self.node_mut(id)?.child.take() {
            c.kill().await?;
        }
        Ok(())
    }

    /// Sends `signal` to node `id`'s process.
    pub fn signal(&mut self, id: u64, signal: Signal) -> anyhow::Result<()> {
        let pid = self.node_mut(id)?.pid().with_context(|| format!("node {id} is not running"))?;
        kill(Pid::from_raw(pid as i32), signal).with_context(|| format!("signal node {id}"))?;
        Ok(())
    }

    /// Stops node `id` with SIGTERM; kills it if it is not gone within `timeout`.
    pub async fn stop(&mut self, id: u64, timeout: Duration) -> anyhow::Result<()> {
        let node = self.node_mut(id)?;
        let Some(mut c) = node.child.take() else { return Ok(()) };
        if let Some(pid) = c.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        match tokio::time::timeout(timeout, c.wait()).await {
            Ok(r) => {
                r?;
                Ok(())
            }
            Err(_) => {
                c.kill().await?;
                bail!("node {id} did not stop within {timeout:?} of SIGTERM; killed it")
            }
        }
    }

    /// Waits for node `id` to exit on its own; returns its exit status, if it ran.
    pub async fn try_wait(&mut self, id: u64) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let node = self.node_mut(id)?;
        match node.child.as_mut() {
            Some(c) => Ok(c.try_wait()?),
            None => Ok(None),
        }
    }

    /// Ids of the nodes whose process runs.
    pub fn running(&mut self) -> Vec<u64> {
        self.nodes.iter_mut().filter_map(|n| n.is_running().then_some(n.id)).collect()
    }

    /// Cluster status from the first running node that answers.
    pub async fn status(&mut self) -> anyhow::Result<pb::ClusterStatusResponse> {
        let mut last = None;
        for id in self.running() {
            match self.node(id).admin(Duration::from_secs(2)).cluster_status().await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        bail!("no node answered cluster status: {last:?}")
    }

    /// Waits until `group` has a leader among the running nodes that every running replica
    /// agrees on; returns `(leader, term)`. With `not`, a leader other than that node.
    pub async fn wait_leader(
        &mut self,
        group: &str,
        not: Option<u64>,
        timeout: Duration,
    ) -> anyhow::Result<(u64, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.running();
            if let Ok(s) = self.status().await
                && let Some(g) = s.groups.iter().find(|g| g.name == group)
                && let Some(leader) = g.leader
                && Some(leader) != not
                && running.contains(&leader)
                && g.replicas.iter().filter(|r| running.contains(&r.node_id)).all(|r| r.term == g.term)
            {
                return Ok((leader, g.term));
            }
            if Instant::now() > deadline {
                bail!("no agreed leader of {group} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every broker group is led by its preferred node (see
    /// [`crate::balance::preferred_of`]): after that, the leader balancer moves nothing.
    pub async fn wait_balanced(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(s) = self.status().await
                && s.groups.iter().filter(|g| g.id != 0).all(|g| {
                    g.leader.is_some()
                        && g.leader == crate::balance::preferred_of(g.id, &g.voters, &s.retired)
                })
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("broker group leaders not on their preferred nodes within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(c) = n.child.as_mut() {
                let _ = c.start_kill();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_below_the_ephemeral_range() {
        let first: Vec<u16> =
            free_ports(3).unwrap().iter().flat_map(|p| [p.raft, p.client, p.remoting]).collect();
        let second: Vec<u16> =
            free_ports(3).unwrap().iter().flat_map(|p| [p.raft, p.client, p.remoting]).collect();
        let all: std::collections::BTreeSet<u16> = first.iter().chain(&second).copied().collect();
        assert_eq!(all.len(), 18, "two calls never hand out the same port: {first:?} {second:?}");
        if let Some((low, high)) = below_ephemeral() {
            assert!(all.iter().all(|p| (low..high).contains(p)), "{all:?} not in {low}..{high}");
        }
    }
}
