//! Spreads broker-group leadership over the nodes: broker group *n* prefers the *n*-th voter (in
//! id order, wrapping). A leader hands over to the preferred node only when that replica has
//! caught up, so a lagging or flapping node never takes leadership (DLedger's preferred-leader
//! pitfalls, issues DL#85 and #3210). A node being removed (retired in the NameServer) is never
//! preferred, so leadership moved off it stays off.

use std::time::Duration;

use raftmq_raft::Group;
use tokio::sync::watch;

use crate::broker::Brokers;
use crate::nameserver::NameServer;

/// How often each node checks its broker groups.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Most entries a replica may lag and still count as caught up: to take over leadership, or to
/// be promoted from learner to voter.
pub const CAUGHT_UP_LAG_MAX: u64 = 64;

/// The node group `group` prefers as leader, never one of the `retired` nodes.
pub fn preferred(group: &Group, retired: &[u64]) -> Option<u64> {
    preferred_of(group.id().0, &group.status().voters, retired)
}

/// The node the group with id `group_id` and these voters prefers as leader: broker groups
/// take the voters in turn, so leaders spread over the nodes. `retired` voters (being removed)
/// are skipped.
pub fn preferred_of(group_id: u32, voters: &[u64], retired: &[u64]) -> Option<u64> {
    let mut voters: Vec<u64> = voters.iter().copied().filter(|v| !retired.contains(v)).collect();
    voters.sort_unstable();
    let n = voters.len();
    (n > 0).then(|| voters[(group_id as usize).saturating_sub(1) % n])
}

/// Hands leadership of `group` to its preferred node if this node leads it, the preferred node
/// is someone else, and its replica has caught up. Returns the node asked to take over.
pub async fn balance_once(node_id: u64, group: &Group, retired: &[u64]) -> Option<u64> {
    let st = group.status();
    if !st.is_leader() {
        return None;
    }
    let want = preferred(group, retired)?;
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
pub async fn run(node_id: u64, ns: NameServer, brokers: Brokers, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let retired: Vec<u64> = ns.read_local(|s| s.retired.iter().copied().collect());
        for b in brokers.all() {
            balance_once(node_id, &b.group, &retired).await;
        }
    }
}

/// How long a stopping node waits for its leaderships to move.
pub const HAND_OVER_WAIT: Duration = Duration::from_secs(3);

/// Hands every group this node leads to a caught-up other voter (the group's preferred node
/// among them, else the most caught-up; never a `retired` one) and waits (up to
/// [`HAND_OVER_WAIT`]) until each has a new leader: a node stopping on SIGTERM costs clients a
/// leader transfer (milliseconds) instead of an election timeout. Groups with no caught-up voter
/// are left to the election.
pub async fn hand_over(node_id: u64, groups: Vec<Group>, retired: &[u64]) {
    let moves = groups.into_iter().filter(Group::is_leader).map(|g| async move {
        let st = g.status();
        let last = st.last_log_index.unwrap_or(0);
        let ready: Vec<(u64, u64)> = st
            .replication
            .iter()
            .filter(|(n, _)| *n != node_id && st.voters.contains(n) && !retired.contains(n))
            .filter_map(|(n, m)| m.filter(|m| m + CAUGHT_UP_LAG_MAX >= last).map(|m| (*n, m)))
            .collect();
        let preferred = (g.id().0 != 0).then(|| preferred_of(g.id().0, &st.voters, retired)).flatten();
        let to = preferred
            .filter(|p| ready.iter().any(|(n, _)| n == p))
            .or_else(|| ready.iter().max_by_key(|(_, m)| *m).map(|(n, _)| *n))?;
        if let Err(e) = g.transfer_leader(to).await {
            tracing::warn!(group = %g.id(), to, error = %e, "leader hand-over failed");
            return None;
        }
        let moved =
            g.wait_for(HAND_OVER_WAIT, "the new leader", |s| s.leader.is_some_and(|l| l != node_id)).await;
        match moved {
            Ok(_) => tracing::info!(group = %g.id(), to, "handed leadership over before stopping"),
            Err(e) => {
                tracing::warn!(group = %g.id(), to, error = %e, "leadership did not move before stopping")
            }
        }
        Some(to)
    });
    futures::future::join_all(moves).await;
}
