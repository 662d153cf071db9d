//! One node's view of one group, for `cluster status` and the NameServer's leader reports.

use openraft::RaftMetrics;
use raftmq_proto::raft as pb;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::TypeConfig;

use crate::group::role_name;

/// What a node knows about a group it hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// The node reporting.
    pub node_id: NodeId,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Current leader, if known.
    pub leader: Option<NodeId>,
    /// Index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// Highest index known committed.
    pub committed: Option<u64>,
    /// Highest index applied to the state machine.
    pub applied: Option<u64>,
    /// Index the last snapshot covers.
    pub snapshot: Option<u64>,
    /// Highest purged index.
    pub purged: Option<u64>,
    /// Voters of the current membership.
    pub voters: Vec<NodeId>,
    /// Learners of the current membership.
    pub learners: Vec<NodeId>,
    /// On the leader: the index each replica matched.
    pub replication: Vec<(NodeId, Option<u64>)>,
}

impl GroupStatus {
    pub(crate) fn from_metrics(group: GroupId, m: &RaftMetrics<TypeConfig>) -> Self {
        let membership = m.membership_config.membership();
        Self {
            group,
            node_id: m.id,
            role: role_name(m.state).to_string(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed: m.local_committed.map(|l| l.index),
            applied: m.last_applied.map(|l| l.index),
            snapshot: m.snapshot.map(|l| l.index),
            purged: m.purged.map(|l| l.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            replication: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }

    /// How many entries `node` lags this (leader's) last log entry; `None` while nothing is
    /// known of its replication.
    pub fn lag(&self, node: NodeId) -> Option<u64> {
        let matched = self.replication.iter().find(|(n, _)| *n == node).and_then(|(_, m)| *m)?;
        Some(self.last_log_index.unwrap_or(0).saturating_sub(matched))
    }

    /// On the wire.
    pub fn to_pb(&self) -> pb::GroupStatusResponse {
        pb::GroupStatusResponse {
            group: self.group.0,
            name: self.group.name(),
            node_id: self.node_id,
            role: self.role.clone(),
            term: self.term,
            leader: self.leader,
            last_log_index: self.last_log_index,
            committed: self.committed,
            applied: self.applied,
            snapshot: self.snapshot,
            purged: self.purged,
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            replication: self
                .replication
                .iter()
                .map(|(id, m)| pb::ReplicaProgress { node_id: *id, matched_index: *m })
                .collect(),
        }
    }

    /// Off the wire.
    pub fn from_pb(p: &pb::GroupStatusResponse) -> Self {
        Self {
            group: GroupId(p.group),
            node_id: p.node_id,
            role: p.role.clone(),
            term: p.term,
            leader: p.leader,
            last_log_index: p.last_log_index,
            committed: p.committed,
            applied: p.applied,
            snapshot: p.snapshot,
            purged: p.purged,
            voters: p.voters.clone(),
            learners: p.learners.clone(),
            replication: p.replication.iter().map(|r| (r.node_id, r.matched_index)).collect(),
        }
    }
}
