//! Errors of the raft crate: "this request failed" kept apart from "this group is dead", as
//! openraft does, and a leader hint wherever one is known.

use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;

/// Why a request to a group did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RaftError {
    /// This node is not the group's leader. `leader` is the leader if known.
    #[error("{group}: this node is not the leader{}", leader_hint(.leader))]
    NotLeader {
        /// The group asked.
        group: GroupId,
        /// The current leader and its addresses, if known.
        leader: Option<(NodeId, NodeInfo)>,
    },
    /// The write's entry was dropped when leadership changed; it may or may not have committed.
    #[error("{group}: leader changed while the write was in flight; outcome unknown")]
    Indeterminate {
        /// The group asked.
        group: GroupId,
        /// The new leader, if known.
        leader: Option<(NodeId, NodeInfo)>,
    },
    /// The leader cannot reach a quorum (partition, or peers down).
    #[error("{group}: no quorum: {reason}")]
    NoQuorum {
        /// The group asked.
        group: GroupId,
        /// What openraft reported.
        reason: String,
    },
    /// This node does not host the group.
    #[error("{0}: not hosted on this node")]
    GroupNotFound(GroupId),
    /// The group's Raft stopped (storage failure or shutdown); it serves nothing until restart.
    #[error("{group}: raft stopped: {reason}")]
    Fatal {
        /// The group asked.
        group: GroupId,
        /// Why it stopped.
        reason: String,
    },
    /// Any other refusal from openraft (for example a membership change in progress).
    #[error("{group}: {reason}")]
    Rejected {
        /// The group asked.
        group: GroupId,
        /// What openraft reported.
        reason: String,
    },
}

fn leader_hint(leader: &Option<(NodeId, NodeInfo)>) -> String {
    match leader {
        Some((id, info)) => format!("; the leader is node {id} at {}", info.client_addr),
        None => "; no leader is known right now".to_string(),
    }
}

impl RaftError {
    /// The leader this error points at, if any.
    pub fn leader(&self) -> Option<&(NodeId, NodeInfo)> {
        match self {
            RaftError::NotLeader { leader, .. } | RaftError::Indeterminate { leader, .. } => leader.as_ref(),
            _ => None,
        }
    }

    /// Whether retrying (possibly elsewhere) can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, RaftError::GroupNotFound(_))
    }
}
