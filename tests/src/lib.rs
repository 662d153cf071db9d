//! Test harness of raftmq: real node processes on 127.0.0.1, each with its own data directory
//! and ports, driven through the `client` crate. Nothing of our own is mocked.

use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use raftmq_client::AdminClient;
use raftmq_client::proto::admin as pb;
use tempfile::TempDir;

/// One node of a test cluster.
pub struct TestNode {
    /// Node id.
    pub id: u64,
    /// Its config file.
    pub config: PathBuf,
    /// Client address.
    pub client_addr: String,
    /// Internal address.
    pub raft_addr: String,
    /// Log file (stdout and stderr of the process).
    pub log: PathBuf,
    child: Option<Child>,
}

impl TestNode {
    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A cluster of node processes in a temporary directory; killed when dropped.
pub struct TestCluster {
    /// The nodes, by position (`nodes[i].id == i + 1`).
    pub nodes: Vec<TestNode>,
    bin: PathBuf,
    dir: TempDir,
}

/// Free TCP ports on 127.0.0.1 (bound, then released just before the nodes start).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("bind 127.0.0.1:0")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

impl TestCluster {
    /// Starts `n` nodes with `broker_groups` broker groups; returns once every process runs.
    pub fn start(bin: &Path, n: u64, broker_groups: u32) -> anyhow::Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("raftmq-it-").tempdir()?;
        let ports = free_ports(2 * n as usize)?;
        let members: Vec<(u64, String, String)> = (1..=n)
            .map(|i| {
                let k = (i - 1) as usize * 2;
                (i, format!("127.0.0.1:{}", ports[k]), format!("127.0.0.1:{}", ports[k + 1]))
            })
            .collect();
        let mut nodes = Vec::new();
        for (id, raft_addr, client_addr) in &members {
            let mut text = format!(
                "node_id = {id}\ndata_dir = \"{}\"\nraft_addr = \"{raft_addr}\"\nclient_addr = \"{client_addr}\"\nbroker_groups = {broker_groups}\n",
                dir.path().join(format!("node-{id}")).display()
            );
            for (mid, r, c) in &members {
                text.push_str(&format!(
                    "\n[[initial_members]]\nid = {mid}\nraft_addr = \"{r}\"\nclient_addr = \"{c}\"\n"
                ));
            }
            text.push_str("\n[log]\nlevel = \"info,raftmq_raft=debug,openraft=warn\"\n");
            let config = dir.path().join(format!("node-{id}.toml"));
            std::fs::write(&config, text)?;
            nodes.push(TestNode {
                id: *id,
                config,
                client_addr: client_addr.clone(),
                raft_addr: raft_addr.clone(),
                log: dir.path().join(format!("node-{id}.log")),
                child: None,
            });
        }
        let mut cluster = TestCluster { nodes, bin: bin.to_path_buf(), dir };
        for id in 1..=n {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    /// The cluster's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn node_mut(&mut self, id: u64) -> &mut TestNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts (or restarts) node `id` with its config; its output is appended to its log file.
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let bin = self.bin.clone();
        let node = self.node_mut(id);
        if node.is_running() {
            bail!("node {id} is already running");
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let child = Command::new(&bin)
            .arg("node")
            .arg("--config")
            .arg(&node.config)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        node.child = Some(child);
        Ok(())
    }

    /// SIGKILLs node `id` (a crash: nothing is flushed on the way out).
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Stops node `id` with SIGTERM and waits for it to exit.
    pub fn stop(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM)?;
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    c.kill()?;
                    c.wait()?;
                    bail!("node {id} did not stop within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// An admin client of node `id`.
    pub fn admin(&self, id: u64) -> AdminClient {
        AdminClient::connect(&self.nodes[(id - 1) as usize].client_addr, Duration::from_secs(5))
            .expect("test addresses are valid")
    }

    /// The tail of node `id`'s log, for failure messages.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[(id - 1) as usize].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Cluster status as seen from any running node.
    pub async fn status(&mut self) -> anyhow::Result<pb::ClusterStatusResponse> {
        let mut last = None;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                continue;
            }
            match self.admin(self.nodes[i].id).cluster_status().await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        bail!("no node answered cluster status: {last:?}")
    }

    /// Waits until `group` has a leader that every running replica agrees on; returns
    /// `(leader, term)`.
    pub async fn wait_leader(&mut self, group: &str, timeout: Duration) -> anyhow::Result<(u64, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(s) = self.status().await
                && let Some(g) = s.groups.iter().find(|g| g.name == group)
                && let Some(leader) = g.leader
            {
                let running: Vec<u64> =
                    self.nodes.iter_mut().filter_map(|n| n.is_running().then_some(n.id)).collect();
                let agreed =
                    g.replicas.iter().filter(|r| running.contains(&r.node_id)).all(|r| r.term == g.term);
                if agreed && running.contains(&leader) {
                    return Ok((leader, g.term));
                }
            }
            if Instant::now() > deadline {
                bail!("no agreed leader of {group} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() || std::env::var_os("RAFTMQ_KEEP_TEST_DIRS").is_some() {
            // Keep the data and logs of a failed test for a look.
            let kept = self.dir.path().to_path_buf();
            let _ = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")).keep();
            eprintln!("test cluster kept at {}", kept.display());
        }
    }
}

/// Polls `f` until it returns `Some`, or fails after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
