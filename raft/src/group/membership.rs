//! Membership changes of one group: add a learner, promote it, remove a node. Each goes through
//! the group's Raft log (openraft's joint consensus for voter changes), so every replica agrees
//! on who votes at every index.

use std::collections::BTreeSet;

use openraft::ChangeMembers;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;

use super::Group;
use super::GroupRaft;
use super::write_error;
use crate::error::RaftError;

impl Group {
    /// Adds `id` as a learner (replicated to, never counted in a quorum) and returns at once;
    /// replication to it starts in the background. Re-adding a learner is harmless.
    pub async fn add_learner(&self, id: NodeId, info: NodeInfo) -> Result<(), RaftError> {
        let group = self.id();
        on_raft!(self, r => r.add_learner(id, info, false).await).map_err(|e| write_error(group, e))?;
        tracing::info!(group = %group, node = id, "added a learner");
        Ok(())
    }

    /// Makes learner `id` a voter (joint consensus, then the new uniform config). Callers check
    /// that it caught up first: a voter far behind would make the quorum wait for it.
    pub async fn promote(&self, id: NodeId) -> Result<(), RaftError> {
        let group = self.id();
        let ids = BTreeSet::from([id]);
        on_raft!(self, r => r.change_membership(ChangeMembers::AddVoterIds(ids), false).await)
            .map_err(|e| write_error(group, e))?;
        tracing::info!(group = %group, node = id, "promoted a learner to voter");
        Ok(())
    }

    /// Removes node `id` from the group, voter or learner; it is no longer replicated to.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), RaftError> {
        let group = self.id();
        let ids = BTreeSet::from([id]);
        let change = if self.status().voters.contains(&id) {
            ChangeMembers::RemoveVoters(ids)
        } else {
            ChangeMembers::RemoveNodes(ids)
        };
        on_raft!(self, r => r.change_membership(change, false).await).map_err(|e| write_error(group, e))?;
        tracing::info!(group = %group, node = id, "removed a member");
        Ok(())
    }
}
