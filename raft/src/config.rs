//! Raft timing and how each kind of group is configured.

use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use openraft::SnapshotPolicy;

/// Raft timing shared by every group of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTimeouts {
    /// How often a leader heartbeats an idle follower.
    pub heartbeat: Duration,
    /// Shortest time a follower waits without hearing from a leader before it campaigns.
    pub election_min: Duration,
    /// Longest such time; also the leader lease.
    pub election_max: Duration,
}

impl Default for RaftTimeouts {
    /// Defaults that hold on 2 busy cores: a heartbeat every 250 ms, elections after 1-1.5 s.
    /// A leader's lease is the election maximum, so a partitioned leader stops acknowledging
    /// writes before a new leader can be elected.
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(250),
            election_min: Duration::from_millis(1000),
            election_max: Duration::from_millis(1500),
        }
    }
}

impl RaftTimeouts {
    /// Checks the relations Raft needs: a heartbeat well inside the election window.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() {
            return Err("raft heartbeat interval must be above 0 ms".into());
        }
        if self.election_min < self.heartbeat * 2 {
            return Err(format!(
                "raft election timeout minimum ({} ms) must be at least twice the heartbeat interval ({} ms)",
                self.election_min.as_millis(),
                self.heartbeat.as_millis()
            ));
        }
        if self.election_max <= self.election_min {
            return Err(format!(
                "raft election timeout maximum ({} ms) must be above the minimum ({} ms)",
                self.election_max.as_millis(),
                self.election_min.as_millis()
            ));
        }
        Ok(())
    }
}

/// Which kind of group a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// The NameServer: small state, snapshot often, keep little log.
    NameServer,
    /// A broker group: the log is the CommitLog, purged only by retention.
    Broker,
}

/// Builds the openraft config of one group.
pub fn openraft_config(name: &str, kind: GroupKind, t: &RaftTimeouts) -> Result<Arc<Config>, String> {
    let ms = |d: Duration| d.as_millis() as u64;
    let (snapshot_policy, keep) = match kind {
        GroupKind::NameServer => (SnapshotPolicy::LogsSinceLast(1000), 500),
        // The log holds the messages: openraft must never purge on its own; retention does.
        GroupKind::Broker => (SnapshotPolicy::Never, u64::MAX),
    };
    let config = Config {
        cluster_name: format!("raftmq-{name}"),
        heartbeat_interval: ms(t.heartbeat),
        election_timeout_min: ms(t.election_min),
        election_timeout_max: ms(t.election_max),
        enable_pre_vote: Some(true),
        // Entries per AppendEntries; bytes are bounded by the log store (2 MiB).
        max_payload_entries: 4096,
        snapshot_policy,
        max_in_snapshot_log_to_keep: keep,
        install_snapshot_timeout: 60_000,
        ..Default::default()
    };
    config.validate().map(Arc::new).map_err(|e| e.to_string())
}
