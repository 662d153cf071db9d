//! Node configuration: TOML file, then environment, then command-line flags (later wins), checked
//! once at start with errors that say what to fix.
//!
//! ```toml
//! node_id = 1                         # never reused
//! data_dir = "./data/node-1"
//! raft_addr = "127.0.0.1:7081"        # peers (internal port)
//! client_addr = "127.0.0.1:8081"      # clients: RocketMQ gRPC and admin
//! remoting_addr = "127.0.0.1:9876"    # RocketMQ 4.x clients (Remoting): NameServer and broker
//! broker_groups = 2
//!
//! [[initial_members]]
//! id = 1
//! raft_addr = "127.0.0.1:7081"
//! client_addr = "127.0.0.1:8081"
//! # ... one entry per initial node
//!
//! [raft]
//! heartbeat_ms = 150
//! election_min_ms = 500
//! election_max_ms = 750
//! nameserver_snapshot_logs = 1000
//!
//! [broker]
//! batch_kib_max = 512          # bytes of messages per Raft entry
//! linger_us = 1000             # wait for more messages while writes are in flight
//! inflight_mib_max = 64        # per broker group; beyond, TOO_MANY_REQUESTS
//! memory_budget_mib = 1024     # resident memory of the node; beyond, TOO_MANY_REQUESTS (0: none)
//! tail_cache_mib = 64          # newest log entries kept in memory, per broker group
//! retention_check_secs = 60
//! compact_min_entries = 10000
//! direct_io = true             # false on tmpfs
//! segment_mib = 64             # size of one CommitLog segment file (commitlog/*.seg)
//! invisible_ms_min = 10000     # shortest invisible time a consumer may ask for
//! auto_create_groups = true    # consumer groups are created on first use
//! delay_max_secs = 259200      # furthest delivery time a delayed message may ask for (3 days)
//! auto_create_topics = false   # a send or route query for an unknown topic creates it (MIXED, 8 queues)
//! transaction_check_secs = 30  # an open transaction is checked back after this, and between checks
//! transaction_checks_max = 15  # check-backs before an open transaction is rolled back
//! balance_leaders = true       # hand each broker group's leadership to its preferred node
//! retry_delays_ms = [10000, 30000, 60000, ...]  # push consumers' retry schedule (RocketMQ's 16 steps)
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::net::ToSocketAddrs;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use raftmq_raft::RaftSettings;
use serde::Deserialize;
use serde::Serialize;

/// Most broker groups a cluster may have.
pub const BROKER_GROUPS_MAX: u32 = 64;

/// A node of the initial cluster, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Node id (1 or more).
    pub id: u64,
    /// Where peers reach it, `host:port`.
    pub raft_addr: String,
    /// Where clients reach it, `host:port`.
    pub client_addr: String,
}

/// Raft timing, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Election timeout, lower bound.
    pub election_min_ms: u64,
    /// Election timeout, upper bound (also the leader lease).
    pub election_max_ms: u64,
    /// The NameServer snapshots every this many log entries, then purges older entries.
    pub nameserver_snapshot_logs: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        let t = RaftSettings::default();
        Self {
            heartbeat_ms: t.heartbeat.as_millis() as u64,
            election_min_ms: t.election_min.as_millis() as u64,
            election_max_ms: t.election_max.as_millis() as u64,
            nameserver_snapshot_logs: t.nameserver_snapshot_logs,
        }
    }
}

/// Broker groups: write path, memory and retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSection {
    /// Most bytes of messages in one Raft entry.
    pub batch_kib_max: u64,
    /// Longest wait for more messages while earlier writes are in flight, microseconds.
    pub linger_us: u64,
    /// Most bytes accepted but not yet acknowledged per broker group; beyond, sends get
    /// TOO_MANY_REQUESTS.
    pub inflight_mib_max: u64,
    /// Most resident memory of the node before sends get TOO_MANY_REQUESTS, MiB (0: no budget).
    pub memory_budget_mib: u64,
    /// Memory for the newest log entries of each broker group (recent messages are read from it).
    pub tail_cache_mib: u64,
    /// How often the leader of a broker group removes expired messages, seconds.
    pub retention_check_secs: u64,
    /// Snapshot and purge a broker group's log once retention released this many entries.
    pub compact_min_entries: u64,
    /// Write flushed memtables and compactions with direct I/O (skips a page-cache copy of every
    /// message). Set false when the data directory is on a file system without `O_DIRECT`
    /// (tmpfs).
    pub direct_io: bool,
    /// Size of one file of the node's segment log (`commitlog/*.seg`), MiB: the unit that
    /// retention deletes (RocketMQ's `mappedFileSizeCommitLog`, 1 GiB there).
    pub segment_mib: u64,
    /// Shortest invisible time a consumer may ask for, ms (RocketMQ: 10 s).
    pub invisible_ms_min: i64,
    /// Create a consumer group the first time a consumer uses it.
    pub auto_create_groups: bool,
    /// Furthest a delayed message's delivery time may lie ahead, seconds (RocketMQ: 3 days).
    pub delay_max_secs: u64,
    /// Create a topic the first time a producer sends to it or asks for its route.
    pub auto_create_topics: bool,
    /// How long a transaction may stay open before a check-back, and between check-backs, s.
    pub transaction_check_secs: u64,
    /// Check-backs before an open transaction is rolled back.
    pub transaction_checks_max: u32,
    /// The wait before delivery attempt 2, 3, ... of a message whose consumption failed, ms, as
    /// push consumers learn it from their settings (RocketMQ: 10 s, 30 s, 1 min ... 2 h).
    pub retry_delays_ms: Vec<u64>,
    /// Hand each broker group's leadership to its preferred node once that replica caught up,
    /// so leaders spread over the nodes (off: leaders stay where elections or
    /// `raftmq admin leader transfer` put them).
    pub balance_leaders: bool,
}

impl Default for BrokerSection {
    fn default() -> Self {
        Self {
            batch_kib_max: 512,
            linger_us: 1000,
            inflight_mib_max: 64,
            memory_budget_mib: 1024,
            tail_cache_mib: 64,
            retention_check_secs: 60,
            compact_min_entries: 10_000,
            direct_io: true,
            segment_mib: 64,
            invisible_ms_min: 10_000,
            auto_create_groups: true,
            delay_max_secs: 3 * 24 * 3600,
            auto_create_topics: false,
            transaction_check_secs: 30,
            transaction_checks_max: 15,
            // RocketMQ's schedule (10 s, 30 s, 1 min ... 2 h), the SDK's default too.
            retry_delays_ms: raftmq_client::push::RETRY_DELAYS_SECS.iter().map(|s| s * 1000).collect(),
            balance_leaders: true,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `tracing` filter, e.g. `info` or `info,raftmq_raft=debug`; `RUST_LOG` overrides it.
    /// Default `info,openraft=warn`.
    pub level: String,
    /// Where spans go over OTLP/gRPC, e.g. `http://jaeger:4317`; none: no export.
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `raftmq node --otlp-endpoint` set it too.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (the node id goes beside it). Default `raftmq`.
    pub service_name: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info,openraft=warn".to_string(),
            otlp_endpoint: None,
            service_name: "raftmq".to_string(),
        }
    }
}

/// The file format, as written. Every field has a default except `node_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// This node's id.
    pub node_id: Option<u64>,
    /// Data directory (RocksDB, snapshots). Default `./data/node-<id>`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Internal address to listen on. Default `127.0.0.1:708<id>`.
    #[serde(default)]
    pub raft_addr: Option<String>,
    /// Client address to listen on. Default `127.0.0.1:808<id>`.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// Internal address peers use, when it differs from `raft_addr` (containers, NAT).
    #[serde(default)]
    pub advertise_raft_addr: Option<String>,
    /// Client address given to clients in routes, when it differs from `client_addr`.
    #[serde(default)]
    pub advertise_client_addr: Option<String>,
    /// Remoting address to listen on (RocketMQ 4.x clients). Default `127.0.0.1:987<5+id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remoting_addr: Option<String>,
    /// Remoting address given to 4.x clients in routes, when it differs from `remoting_addr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_remoting_addr: Option<String>,
    /// Number of broker groups. Default 2.
    #[serde(default)]
    pub broker_groups: Option<u32>,
    /// Async worker threads of the node. Default: one per CPU. Nodes sharing a machine (as
    /// with `raftmq cluster`) do better with fewer each.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// The nodes that form the cluster the first time it starts. Default: the three nodes of
    /// `raftmq cluster` on 127.0.0.1.
    #[serde(default)]
    pub initial_members: Vec<MemberConfig>,
    /// Raft timing.
    #[serde(default)]
    pub raft: RaftSection,
    /// Broker groups.
    #[serde(default)]
    pub broker: BrokerSection,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
}

impl RawConfig {
    /// Parses a TOML document; unknown keys are errors (a typo should not be silently ignored).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// Applies `RAFTMQ_*` environment overrides (see [`ENV_VARS`]).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(v) = get("RAFTMQ_NODE_ID") {
            self.node_id = Some(v.parse().map_err(|_| format!("RAFTMQ_NODE_ID={v:?} is not a number"))?);
        }
        if let Some(v) = get("RAFTMQ_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = get("RAFTMQ_RAFT_ADDR") {
            self.raft_addr = Some(v);
        }
        if let Some(v) = get("RAFTMQ_CLIENT_ADDR") {
            self.client_addr = Some(v);
        }
        if let Some(v) = get("RAFTMQ_ADVERTISE_RAFT_ADDR") {
            self.advertise_raft_addr = Some(v);
        }
        if let Some(v) = get("RAFTMQ_ADVERTISE_CLIENT_ADDR") {
            self.advertise_client_addr = Some(v);
        }
        if let Some(v) = get("RAFTMQ_REMOTING_ADDR") {
            self.remoting_addr = Some(v);
        }
        if let Some(v) = get("RAFTMQ_ADVERTISE_REMOTING_ADDR") {
            self.advertise_remoting_addr = Some(v);
        }
        if let Some(v) = get("RAFTMQ_LOG") {
            self.log.level = v;
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.is_empty()) {
            self.log.otlp_endpoint = Some(v);
        }
        if let Some(v) = get("RAFTMQ_HOST_MAP") {
            self.map_hosts(&parse_host_map(&v)?);
        }
        Ok(())
    }

    /// Replaces host names in every address (listen, advertised, initial members) by `map`'s
    /// value: the container configs under `deploy/` (hosts `node1`..`node3`) then run on one
    /// machine with `node1=127.0.0.11,...`, every other setting unchanged.
    pub fn map_hosts(&mut self, map: &std::collections::BTreeMap<String, String>) {
        let swap = |addr: &mut String| {
            if let Some((host, port)) = addr.rsplit_once(':')
                && let Some(to) = map.get(host)
            {
                *addr = format!("{to}:{port}");
            }
        };
        for a in [
            &mut self.raft_addr,
            &mut self.client_addr,
            &mut self.advertise_raft_addr,
            &mut self.advertise_client_addr,
            &mut self.remoting_addr,
            &mut self.advertise_remoting_addr,
        ]
        .into_iter()
        .flatten()
        {
            swap(a);
        }
        for m in &mut self.initial_members {
            swap(&mut m.raft_addr);
            swap(&mut m.client_addr);
        }
    }
}

/// Parses `host=ip,host=ip` (the value of `RAFTMQ_HOST_MAP` and `raftmq cluster --host-map`).
pub fn parse_host_map(v: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    v.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((h, to)) if !h.trim().is_empty() && !to.trim().is_empty() => {
                Ok((h.trim().to_string(), to.trim().to_string()))
            }
            _ => Err(format!("host map entry {p:?} is not host=address; for example node1=127.0.0.11")),
        })
        .collect()
}

/// Environment variables a node reads.
pub const ENV_VARS: [&str; 11] = [
    "RAFTMQ_NODE_ID",
    "RAFTMQ_DATA_DIR",
    "RAFTMQ_RAFT_ADDR",
    "RAFTMQ_CLIENT_ADDR",
    "RAFTMQ_ADVERTISE_RAFT_ADDR",
    "RAFTMQ_ADVERTISE_CLIENT_ADDR",
    "RAFTMQ_REMOTING_ADDR",
    "RAFTMQ_ADVERTISE_REMOTING_ADDR",
    "RAFTMQ_LOG",
    "RAFTMQ_HOST_MAP",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The default member list: `raftmq cluster`'s three nodes on 127.0.0.1.
pub fn default_members(n: u64) -> Vec<MemberConfig> {
    (1..=n)
        .map(|i| MemberConfig {
            id: i,
            raft_addr: format!("127.0.0.1:{}", 7080 + i),
            client_addr: format!("127.0.0.1:{}", 8080 + i),
        })
        .collect()
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id.
    pub node_id: u64,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Internal listen address.
    pub raft_listen: SocketAddr,
    /// Client listen address.
    pub client_listen: SocketAddr,
    /// Internal address peers use.
    pub raft_advertise: String,
    /// Client address clients use.
    pub client_advertise: String,
    /// Remoting listen address (RocketMQ 4.x clients).
    pub remoting_listen: SocketAddr,
    /// Remoting address 4.x clients use.
    pub remoting_advertise: String,
    /// Number of broker groups.
    pub broker_groups: u32,
    /// Async worker threads.
    pub worker_threads: usize,
    /// The initial cluster.
    pub initial_members: Vec<MemberConfig>,
    /// Raft timing.
    pub raft: RaftSettings,
    /// Broker groups.
    pub broker: BrokerSection,
    /// Log filter.
    pub log_level: String,
    /// OTLP/gRPC endpoint for spans (`http://host:port`), if any.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans.
    pub service_name: String,
}

fn socket_addr(field: &str, v: &str) -> Result<SocketAddr, String> {
    v.to_socket_addrs()
        .map_err(|e| format!("{field} {v:?} is not a host:port address ({e}); for example 127.0.0.1:8081"))?
        .next()
        .ok_or_else(|| format!("{field} {v:?} resolves to no address"))
}

impl RawConfig {
    /// Checks every field and fills defaults.
    pub fn validate(self) -> Result<NodeConfig, String> {
        let node_id = self
            .node_id
            .ok_or("node_id is missing: set node_id in the config, RAFTMQ_NODE_ID or --node-id")?;
        if node_id == 0 {
            return Err("node_id must be 1 or more".into());
        }
        if let Some(e) = &self.log.otlp_endpoint
            && !(e.starts_with("http://") && e.len() > "http://".len())
        {
            return Err(format!(
                "log.otlp_endpoint {e:?}: give the collector's OTLP/gRPC address as http://host:port (e.g. http://jaeger:4317)"
            ));
        }
        if self.log.service_name.trim().is_empty() {
            return Err("log.service_name must not be empty".into());
        }
        let members = if self.initial_members.is_empty() { default_members(3) } else { self.initial_members };
        let mut ids = BTreeSet::new();
        for m in &members {
            if m.id == 0 {
                return Err("initial_members: id must be 1 or more".into());
            }
            if !ids.insert(m.id) {
                return Err(format!("initial_members: node id {} is listed twice", m.id));
            }
            socket_addr(&format!("initial_members[{}].raft_addr", m.id), &m.raft_addr)?;
            socket_addr(&format!("initial_members[{}].client_addr", m.id), &m.client_addr)?;
        }
        let me = members.iter().find(|m| m.id == node_id);
        let raft_addr = match (&self.raft_addr, me) {
            (Some(a), _) => a.clone(),
            (None, Some(m)) => m.raft_addr.clone(),
            (None, None) => format!("127.0.0.1:{}", 7080 + node_id),
        };
        let client_addr = match (&self.client_addr, me) {
            (Some(a), _) => a.clone(),
            (None, Some(m)) => m.client_addr.clone(),
            (None, None) => format!("127.0.0.1:{}", 8080 + node_id),
        };
        let raft_listen = socket_addr("raft_addr", &raft_addr)?;
        let client_listen = socket_addr("client_addr", &client_addr)?;
        if raft_listen == client_listen {
            return Err(format!(
                "raft_addr and client_addr are both {raft_addr}: internal RPCs need their own port"
            ));
        }
        let remoting_addr =
            self.remoting_addr.clone().unwrap_or_else(|| format!("127.0.0.1:{}", 9875 + node_id));
        let remoting_listen = socket_addr("remoting_addr", &remoting_addr)?;
        if remoting_listen == raft_listen || remoting_listen == client_listen {
            return Err(format!(
                "remoting_addr {remoting_addr} is also raft_addr or client_addr: Remoting needs its own port"
            ));
        }
        let broker_groups = self.broker_groups.unwrap_or(2);
        if broker_groups == 0 || broker_groups > BROKER_GROUPS_MAX {
            return Err(format!("broker_groups must be 1-{BROKER_GROUPS_MAX}, got {broker_groups}"));
        }
        let raft = RaftSettings {
            heartbeat: Duration::from_millis(self.raft.heartbeat_ms),
            election_min: Duration::from_millis(self.raft.election_min_ms),
            election_max: Duration::from_millis(self.raft.election_max_ms),
            nameserver_snapshot_logs: self.raft.nameserver_snapshot_logs,
        };
        raft.validate().map_err(|e| format!("[raft] {e}"))?;
        if self.worker_threads.is_some_and(|n| n == 0 || n > 1024) {
            return Err(format!("worker_threads must be 1-1024, got {:?}", self.worker_threads));
        }
        let b = &self.broker;
        if b.segment_mib == 0 || b.segment_mib > 1024 {
            return Err(format!("[broker] segment_mib must be 1-1024, got {}", b.segment_mib));
        }
        if b.batch_kib_max == 0 || b.batch_kib_max > 16 << 10 {
            return Err(format!("[broker] batch_kib_max must be 1-16384, got {}", b.batch_kib_max));
        }
        if b.inflight_mib_max == 0 || b.inflight_mib_max > 16 << 10 {
            return Err(format!("[broker] inflight_mib_max must be 1-16384, got {}", b.inflight_mib_max));
        }
        if b.retention_check_secs == 0 {
            return Err("[broker] retention_check_secs must be above 0".into());
        }
        if b.linger_us > 100_000 {
            return Err(format!("[broker] linger_us must be at most 100000 (0.1 s), got {}", b.linger_us));
        }
        if !(100..=3_600_000).contains(&b.invisible_ms_min) {
            return Err(format!(
                "[broker] invisible_ms_min must be 100-3600000 (1 h), got {}",
                b.invisible_ms_min
            ));
        }
        if b.retry_delays_ms.is_empty() || b.retry_delays_ms.iter().any(|d| !(1..=43_200_000).contains(d)) {
            return Err(format!(
                "[broker] retry_delays_ms must list 1 or more delays of 1 ms - 12 h, got {:?}",
                b.retry_delays_ms
            ));
        }
        if !(1..=86_400).contains(&b.transaction_check_secs) {
            return Err(format!(
                "[broker] transaction_check_secs must be 1-86400 (a day), got {}",
                b.transaction_check_secs
            ));
        }
        if !(1..=1000).contains(&b.transaction_checks_max) {
            return Err(format!(
                "[broker] transaction_checks_max must be 1-1000, got {}",
                b.transaction_checks_max
            ));
        }
        if !(1..=365 * 24 * 3600).contains(&b.delay_max_secs) {
            return Err(format!(
                "[broker] delay_max_secs must be 1-31536000 (a year), got {}",
                b.delay_max_secs
            ));
        }
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from(format!("./data/node-{node_id}")));
        Ok(NodeConfig {
            node_id,
            data_dir,
            raft_listen,
            client_listen,
            raft_advertise: self.advertise_raft_addr.unwrap_or(raft_addr),
            client_advertise: self.advertise_client_addr.unwrap_or(client_addr),
            remoting_listen,
            remoting_advertise: self.advertise_remoting_addr.unwrap_or(remoting_addr),
            broker_groups,
            worker_threads: self
                .worker_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            initial_members: members,
            raft,
            broker: self.broker,
            log_level: self.log.level,
            otlp_endpoint: self.log.otlp_endpoint,
            service_name: self.log.service_name,
        })
    }
}

#[cfg(test)]
mod tests;
