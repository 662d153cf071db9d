//! Spreads broker-group leadership over the nodes: broker group *n* prefers the *n*-th voter (in
//! id order, wrapping). A leader hands over to the preferred node only when that replica has
//! caught up, so a lagging or flapping node never takes leadership (DLedger's preferred-leader
//! pitfalls, issues DL#85 and #3210). A node being removed (retired in the NameServer) is never
//! preferred, so leadership moved off it stays off.

use std::time::Duration;

use raftmq_raft::Group;
use raftmq_raft::GroupStatus;
use tokio::sync::watch;

use crate::broker::Brokers;
use crate::nameserver::NameServer;

/// How often each node checks its broker groups.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Most entries a replica may lag and still count as caught up: to take over leadership, or to
/// be promoted from learner to voter.
pub const CAUGHT_UP_LAG_MAX: u64 = 64;

/// Whether `node` has matched the log of the leader whose view `st` is to within
/// [`CAUGHT_UP_LAG_MAX`] entries: ready to lead, or to vote.
pub fn caught_up(st: &GroupStatus, node: u64) -> bool {
    st.lag(node).is_some_and(|l| l <= CAUGHT_UP_LAG_MAX)
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

/// Who takes a group over from `leaving`: among its voters that are neither leaving nor retired
/// and have caught up (`lag` of each; `None` when unknown or unreachable), the group's preferred
/// node, else the least behind. The NameServer (`group_id` 0) has no preferred node.
pub fn successor(
    group_id: u32,
    voters: &[u64],
    leaving: u64,
    retired: &[u64],
    lag: impl Fn(u64) -> Option<u64>,
) -> Option<u64> {
    let ready: Vec<u64> = voters
        .iter()
        .copied()
        .filter(|v| *v != leaving && !retired.contains(v) && lag(*v).is_some_and(|l| l <= CAUGHT_UP_LAG_MAX))
        .collect();
    let preferred = (group_id != 0).then(|| preferred_of(group_id, voters, retired)).flatten();
    preferred.filter(|p| ready.contains(p)).or_else(|| ready.iter().copied().min_by_key(|v| lag(*v)))
}

/// Hands leadership of `group` to its preferred node if this node leads it, the preferred node
/// is someone else, and its replica has caught up. Returns the node asked to take over.
pub async fn balance_once(node_id: u64, group: &Group, retired: &[u64]) -> Option<u64> {
    let st = group.status();
    if !st.is_leader() {
        return None;
    }
    let want = preferred_of(group.id().0, &st.voters, retired)?;
    if want == node_id {
        return None;
    }
    if !caught_up(&st, want) {
        return None;
    }
    tracing::info!(group = %group.id(), to = want, lag = st.lag(want), "handing leadership to the preferred node");
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
        let retired = ns.retired();
        for b in brokers.all() {
            b.step_down_if_damaged().await;
            balance_once(node_id, &b.group, &retired).await;
        }
    }
}

/// Asks the [`successor`] of `node_id` in `group` to take over; returns it, or `None` when no
/// voter is ready or the transfer failed (logged). Does not wait for the new leader.
pub async fn hand_to_successor(group: &Group, node_id: u64, retired: &[u64]) -> Option<u64> {
    let st = group.status();
    let Some(to) = successor(group.id().0, &st.voters, node_id, retired, |n| st.lag(n)) else {
        tracing::warn!(group = %group.id(), "no caught-up replica can take leadership over");
        return None;
    };
    if let Err(e) = group.transfer_leader(to).await {
        tracing::warn!(group = %group.id(), to, error = %e, "leader hand-over failed");
        return None;
    }
    Some(to)
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
        let to = hand_to_successor(&g, node_id, retired).await?;
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
