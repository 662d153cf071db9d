//! Spreads broker-group leadership over the nodes: broker group *n* prefers the *n*-th voter (in
//! id order, wrapping). A leader hands over to the preferred node only when that replica has
//! caught up, so a lagging or flapping node never takes leadership (DLedger's preferred-leader
//! pitfalls, issues DL#85 and #3210).

use std::time::Duration;

use raftmq_raft::Group;
use tokio::sync::watch;

use crate::broker::Brokers;

/// How often each node checks its broker groups.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Most entries the preferred replica may lag and still take over.
const CAUGHT_UP_LAG_MAX: u64 = 64;

/// The node group `group` prefers as leader.
pub fn preferred(group: &Group) -> Option<u64> {
    preferred_of(group.id().0, &group.status().voters)
}

/// The node the group with id `group_id` and these voters prefers as leader: broker groups
/// take the voters in turn, so leaders spread over the nodes.
pub fn preferred_of(group_id: u32, voters: &[u64]) -> Option<u64> {
    let mut voters = voters.to_vec();
    voters.sort_unstable();
    let n = voters.len();
    (n > 0).then(|| voters[(group_id as usize).saturating_sub(1) % n])
}

/// Hands leadership of `group` to its preferred node if this node leads it, the preferred node
/// is someone else, and its replica has caught up. Returns the node asked to take over.
pub async fn balance_once(node_id: u64, group: &Group) -> Option<u64> {
    let st = group.status();
    if !st.is_leader() {
        return None;
    }
    let want = preferred(group)?;
    if want == node_id {
        return None;
    }
    let last = st.last_log_index.unwrap_or(0);
    let matched = st.replication.iter().find(|(n, _)| *n == want).and_then(|(_, m)| *m)?;
    if matched + CAUGHT_UP_LAG_MAX < last {
        return None;
    }
    tracing::info!(group = %group.id(), to = want, matched, last, "handing leadership to the preferred node");
    match group.transfer_leader(want).await {
        Ok(()) => Some(want),
        Err(e) => {
            tracing::warn!(group = %group.id(), error = %e, "leader transfer failed");
            None
        }
    }
}

/// Runs [`balance_once`] on every broker group every couple of seconds until shutdown.
pub async fn run(node_id: u64, brokers: Brokers, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        for b in brokers.all() {
            balance_once(node_id, &b.group).await;
        }
    }
}
