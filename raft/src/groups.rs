//! The groups this node hosts, by id: where the Raft service routes incoming RPCs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;

use raftmq_storage::GroupId;

use crate::error::RaftError;
use crate::group::Group;

/// Registry of the node's groups. Cloning shares it.
#[derive(Clone, Default)]
pub struct Groups {
    inner: Arc<RwLock<BTreeMap<GroupId, Group>>>,
}

impl Groups {
    /// Adds (or replaces) a group.
    pub fn insert(&self, group: Group) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).insert(group.id(), group);
    }

    /// The group `id`, if hosted here.
    pub fn get(&self, id: GroupId) -> Result<Group, RaftError> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .ok_or(RaftError::GroupNotFound(id))
    }

    /// Every hosted group, in id order.
    pub fn all(&self) -> Vec<Group> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Removes every group and shuts each down.
    pub async fn shutdown(&self) {
        let groups: Vec<Group> = std::mem::take(&mut *self.inner.write().unwrap_or_else(|e| e.into_inner()))
            .into_values()
            .collect();
        for g in groups {
            g.shutdown().await;
        }
    }
}
