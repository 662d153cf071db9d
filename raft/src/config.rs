//! Raft timing and how each kind of group is configured.

use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use openraft::SnapshotPolicy;

/// Raft timing and log compaction shared by every group of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftSettings {
    /// How often a leader heartbeats an idle follower.
    pub heartbeat: Duration,
    /// Shortest time a follower waits without hearing from a leader before it campaigns.
    pub election_min: Duration,
    /// Longest such time; also the leader lease.
    pub election_max: Duration,
    /// The NameServer snapshots every this many entries and then purges older ones.
    pub nameserver_snapshot_logs: u64,
}

impl Default for RaftSettings {
    /// A heartbeat every 150 ms, elections after 500-750 ms of silence.
    ///
    /// openraft makes a follower that heard from a leader wait for the leader's lease (the
    /// election maximum) *plus* an election timeout before it campaigns, so a dead leader is
    /// replaced 1.25-1.5 s after its last heartbeat. Pre-vote and the lease keep a busy-but-alive
    /// leader in place: a follower whose heartbeats are late cannot win while the others still
    /// hear from the leader.
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(150),
            election_min: Duration::from_millis(500),
            election_max: Duration::from_millis(750),
            nameserver_snapshot_logs: 1000,
        }
    }
}

impl RaftSettings {
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
        if self.nameserver_snapshot_logs == 0 {
            return Err("raft nameserver_snapshot_logs must be above 0".into());
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
pub fn openraft_config(name: &str, kind: GroupKind, t: &RaftSettings) -> Result<Arc<Config>, String> {
    let ms = |d: Duration| d.as_millis() as u64;
    let (snapshot_policy, keep) = match kind {
        GroupKind::NameServer => {
            (SnapshotPolicy::LogsSinceLast(t.nameserver_snapshot_logs), t.nameserver_snapshot_logs / 2)
        }
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
        // Replicate an entry while the leader is still fsyncing it: commit then waits for the
        // slower of the two, not for both in turn.
        broadcast_submitted_on_append: Some(true),
        // Replication responses prove liveness: skip heartbeats to followers that acked recently.
        heartbeat_min_interval: Some(ms(t.heartbeat) / 2),
        ..Default::default()
    };
    config.validate().map(Arc::new).map_err(|e| e.to_string())
}
