//! Test harness of raftmq: a [`LocalCluster`] of real node processes on free 127.0.0.1 ports in a
//! temporary directory, driven through the `client` crate. Nothing of our own is mocked.

use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use anyhow::bail;
use raftmq_client::AdminClient;
use raftmq_client::admin::GroupSpec;
use raftmq_client::admin::TopicSpec;
use raftmq_node::config::RawConfig;
use raftmq_node::local_cluster::LocalCluster;
use raftmq_node::local_cluster::Output;
use raftmq_node::local_cluster::free_ports;
use raftmq_node::local_cluster::write_configs;
use tempfile::TempDir;

pub mod powerfs;

/// Log filter of test nodes.
const TEST_LOG: &str = "info,raftmq_raft=debug,openraft=warn";

/// A cluster of node processes in a temporary directory; killed when dropped.
pub struct TestCluster {
    /// The processes.
    pub cluster: LocalCluster,
    dir: TempDir,
}

impl TestCluster {
    /// Starts `n` nodes with `broker_groups` broker groups; `tune` may change every config.
    pub fn start_with(
        bin: &Path,
        n: u64,
        broker_groups: u32,
        tune: &dyn Fn(&mut RawConfig),
    ) -> anyhow::Result<TestCluster> {
        let mut c = Self::configure(bin, n, broker_groups, tune)?;
        c.cluster.start_all()?;
        Ok(c)
    }

    /// Writes the configs of `n` nodes (data of node `i` in `<dir>/node-<i>`, its log in
    /// `<dir>/node-<i>.log`) without starting them.
    pub fn configure(
        bin: &Path,
        n: u64,
        broker_groups: u32,
        tune: &dyn Fn(&mut RawConfig),
    ) -> anyhow::Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("raftmq-it-").tempdir()?;
        let files = write_configs(dir.path(), &free_ports(n)?, broker_groups, &|c: &mut RawConfig| {
            c.log.level = TEST_LOG.to_string();
            tune(c);
        })?;
        let logs = dir.path().to_path_buf();
        let cluster = LocalCluster::new(bin, &files, |id| Output::File(logs.join(format!("node-{id}.log"))))?;
        Ok(TestCluster { cluster, dir })
    }

    /// Starts `n` nodes with `broker_groups` broker groups.
    pub fn start(bin: &Path, n: u64, broker_groups: u32) -> anyhow::Result<TestCluster> {
        Self::start_with(bin, n, broker_groups, &|_| {})
    }

    /// Writes the config of one more node (next id, free ports) and starts it; it waits to be
    /// added to the groups. Returns its id.
    pub fn start_extra_node(&mut self) -> anyhow::Result<u64> {
        let ports = free_ports(1)?[0];
        let logs = self.dir.path().to_path_buf();
        let id = self
            .cluster
            .add_node(self.dir.path(), ports, |id| Output::File(logs.join(format!("node-{id}.log"))))?;
        self.cluster.start(id)?;
        Ok(id)
    }

    /// The cluster's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An admin client of node `id`.
    pub fn admin(&self, id: u64) -> AdminClient {
        self.cluster.node(id).admin(Duration::from_secs(5))
    }

    /// The tail of node `id`'s log, for failure messages.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("RAFTMQ_KEEP_TEST_DIRS").is_some() {
            // Keep the data and logs of a failed test for a look.
            let kept = self.dir.path().to_path_buf();
            if let Ok(fresh) = tempfile::tempdir() {
                let _ = std::mem::replace(&mut self.dir, fresh).keep();
                eprintln!("test cluster kept at {}", kept.display());
            }
        }
    }
}

/// Polls `f` until it returns `Some`, or fails after `timeout` naming `what`.
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

/// How long a test cluster may take to start and elect its leaders.
pub const START: Duration = Duration::from_secs(30);

/// A 3-node cluster of `bin` with 2 broker groups, every leader elected, and a normal topic of
/// `queues` queues; `tune` may change every node's config.
pub async fn cluster_with_topic_tuned(
    bin: &Path,
    topic: &str,
    queues: u32,
    tune: &dyn Fn(&mut RawConfig),
) -> TestCluster {
    let mut c = TestCluster::start_with(bin, 3, 2, tune).expect("start cluster");
    for g in ["nameserver", "broker-a", "broker-b"] {
        if let Err(e) = c.cluster.wait_leader(g, None, START).await {
            panic!("{e}\n{}", c.log_tail(1, 40));
        }
    }
    // The leader balancer moves broker leaders to their preferred nodes once; wait for that, so
    // tests do not race a leadership transfer they did not ask for.
    if let Err(e) = c.cluster.wait_balanced(START).await {
        panic!("{e}\n{}", c.log_tail(1, 40));
    }
    create_topic_when_ready(&c, topic, queues).await;
    c
}

/// Creates a normal topic of `queues` queues through node 1, retrying until the NameServer takes
/// it (right after start its leader may still be elected).
pub async fn create_topic_when_ready(c: &TestCluster, topic: &str, queues: u32) {
    let admin = c.admin(1);
    let spec = TopicSpec { name: topic.into(), queue_count: queues, ..Default::default() };
    if let Err(e) = eventually(START, "topic created", || {
        let (admin, spec) = (admin.clone(), spec.clone());
        async move { admin.create_topic(spec).await.ok() }
    })
    .await
    {
        panic!("{e}");
    }
}

/// The node that leads neither broker group of a balanced 3-node, 2-group cluster: requests it
/// takes for a broker group are forwarded.
pub async fn idle_node(c: &mut TestCluster) -> u64 {
    let mut leaders = Vec::new();
    for g in ["broker-a", "broker-b"] {
        match c.cluster.wait_leader(g, None, START).await {
            Ok((l, _)) => leaders.push(l),
            Err(e) => panic!("{e}"),
        }
    }
    match (1..=3).find(|n| !leaders.contains(n)) {
        Some(n) => n,
        None => panic!("every node leads a broker group: {leaders:?}"),
    }
}

/// Creates topic `name` of `queues` queues and message type `kind` (NORMAL, FIFO, DELAY,
/// TRANSACTION) through node 1.
pub async fn create_topic(c: &TestCluster, name: &str, queues: u32, kind: &str) {
    let spec =
        TopicSpec { name: name.into(), queue_count: queues, message_type: kind.into(), ..Default::default() };
    if let Err(e) = c.admin(1).create_topic(spec).await {
        panic!("create topic {name}: {e}");
    }
}

/// Creates clustering consumer groups that start from each queue's first offset.
pub async fn create_groups(c: &TestCluster, groups: &[&str]) {
    let admin = c.admin(1);
    for g in groups {
        let spec = GroupSpec { name: g.to_string(), consume_from: "FIRST".into(), ..Default::default() };
        if let Err(e) = eventually(START, "group created", || {
            let (admin, spec) = (admin.clone(), spec.clone());
            async move { admin.create_group(spec).await.ok() }
        })
        .await
        {
            panic!("{e}");
        }
    }
}

/// [`cluster_with_topic_tuned`] with default configs.
pub async fn cluster_with_topic(bin: &Path, topic: &str, queues: u32) -> TestCluster {
    cluster_with_topic_tuned(bin, topic, queues, &|_| {}).await
}

/// The client addresses of every node, comma-separated: the SDK's `endpoints`.
pub fn endpoints(c: &TestCluster) -> String {
    c.cluster.nodes.iter().map(|n| n.client_addr.clone()).collect::<Vec<_>>().join(",")
}

/// `GET /metrics` of node index `node`, over plain HTTP/1.1.
pub async fn metrics(c: &TestCluster, node: usize) -> String {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let addr = c.cluster.nodes[node].client_addr.clone();
    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect to the metrics port");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: raftmq\r\nConnection: close\r\n\r\n")
        .await
        .expect("send the metrics request");
    let mut page = String::new();
    s.read_to_string(&mut page).await.expect("read the metrics page");
    assert!(page.starts_with("HTTP/1.1 200"), "{}", &page[..page.len().min(200)]);
    page
}

/// Sum of the samples of metric `name` on `page` whose line contains every one of `with`.
pub fn metric_sum(page: &str, name: &str, with: &[&str]) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Receives with `s` until `n` messages arrived (each broker taken in turn) or `timeout` passed;
/// a failed receive fails the test.
pub async fn receive_n(
    s: &raftmq_client::SimpleConsumer,
    n: usize,
    invisible: Duration,
    timeout: Duration,
) -> Vec<raftmq_client::Received> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(s.receive(32, invisible).await.expect("receive"));
    }
    out
}

/// `tests/compat`: the scripts driving the official clients.
pub fn compat_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat")
}

/// Runs a setup script of `tests/compat` and returns what it printed (a path).
async fn compat_setup(script: &str) -> String {
    let out = tokio::process::Command::new(compat_dir().join(script))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The python of the virtualenv with the official Python client (created once, then reused).
pub async fn python() -> String {
    compat_setup("setup.sh").await
}

/// The `node_modules` directory with the official Node.js client (installed once, then reused).
pub async fn node_modules() -> String {
    compat_setup("node/setup.sh").await
}

/// Runs `cmd` to its end within `timeout`; its standard output, or a failed test with both
/// outputs when it fails or prints no line starting with `ok_line`.
pub async fn run_compat(mut cmd: tokio::process::Command, timeout: Duration, ok_line: &str) -> String {
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} timed out after {timeout:?}"))
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(
        out.status.success() && stdout.lines().any(|l| l.starts_with(ok_line)),
        "{cmd:?} failed:\n{stdout}\n--- stderr tail ---\n{}",
        tail.join("\n")
    );
    stdout
}

/// The classpath of the Java compatibility programs with the official 4.x client (built once,
/// then reused).
pub async fn java_classpath() -> String {
    compat_setup("java/setup.sh").await
}

/// Every node's Remoting address, `;`-separated: a 4.x client's `namesrvAddr`.
pub fn namesrv_addr(c: &TestCluster) -> String {
    c.cluster.nodes.iter().map(|n| n.remoting_addr.clone()).collect::<Vec<_>>().join(";")
}

/// The Rust compatibility program (`tests/compat/rust`): the pure-Rust 4.x client
/// `rocketmq-client-rust` and the official 5.x Rust client `rocketmq` (built once, in a target
/// directory of its own, then reused).
pub async fn rust_compat() -> String {
    compat_setup("rust/setup.sh").await
}
