//! A replica whose stored copy fails its checksum. Every read of the log and of the state
//! machine runs through [`BrokerGroup::blocking`]; when one finds corrupt bytes (a record whose
//! CRC does not match, a consume-queue unit that does not parse, a RocksDB checksum failure), this
//! replica never serves
//! them: the request gets UNAVAILABLE, the error is logged with the file, offset and group the
//! storage layer named, and the node hands the group's leadership to a caught-up healthy replica
//! (and again whenever it finds itself leading the group), so the client's retry is served from
//! an intact copy. The damaged copy stays until the node is replaced (`raftmq admin node
//! replace`).
//!
//! Known limit: the damage is known only to the damaged node. If it is the group's preferred
//! node, the healthy leader's balancer hands leadership back once it caught up, and the damaged
//! node steps down again at its next check (every 2 s): the group keeps serving, with a leader
//! transfer every few seconds, until the node is replaced. Publishing damage cluster-wide (as
//! retired nodes are) would end that.

use std::sync::atomic::Ordering;

use raftmq_storage::StorageError;

use super::BrokerGroup;
use crate::error::BrokerError;

impl BrokerGroup {
    /// Runs a storage read off the async workers; corrupt data marks this replica damaged.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, BrokerError> {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_corruption() => {
                self.damaged(&e);
                Err(BrokerError::Unavailable(format!(
                    "group {}: this replica's stored copy is damaged ({e}); leadership is moving to a healthy replica, retry",
                    self.group.id()
                )))
            }
            Ok(Err(e)) => {
                tracing::error!(group = %self.group.id(), error = %e, "broker read failed");
                Err(BrokerError::Internal(e.to_string()))
            }
            Err(e) => Err(BrokerError::Internal(e.to_string())),
        }
    }

    /// Whether a read on this node found corrupt data of this group.
    pub fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Records the damage and steps down if this node leads the group.
    fn damaged(&self, e: &StorageError) {
        let first = !self.damaged.swap(true, Ordering::Relaxed);
        tracing::error!(
            group = %self.group.id(),
            error = %e,
            first,
            "stored data failed its check: not serving it, handing leadership to a healthy replica"
        );
        let group = self.group.clone();
        tokio::spawn(async move { step_down(&group).await });
    }

    /// Steps down if this replica is damaged and leads the group (the balancer of another node
    /// may hand it back; this undoes that).
    pub async fn step_down_if_damaged(&self) {
        if self.is_damaged() {
            step_down(&self.group).await;
        }
    }
}

/// Hands `group` to a caught-up other voter if this node leads it.
async fn step_down(group: &raftmq_raft::Group) {
    let st = group.status();
    if st.is_leader() {
        crate::balance::hand_to_successor(group, st.node_id, &[]).await;
    }
}
