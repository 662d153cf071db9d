//! Rebalance of queue-level consumers (our pull consumer): which queues of a topic each member of
//! a consumer group reads.
//!
//! Members heartbeat the NameServer leader every 400 ms ([`Membership`]) and get back the sorted
//! list of live members; a member that misses 1.2 s of heartbeats is dropped. Every member runs
//! the same [`Strategy`] on the same sorted members and queues, so they agree on the split
//! without talking to each other: after a join or leave, each member's next heartbeat (at most
//! 400 ms later) moves its queues. Two members own one queue only until both have seen the same
//! member list — about one heartbeat.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::admin::AdminClient;
use crate::error::ClientError;
use crate::stop::Stop;

/// How often a member says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(400);

/// How queues are split among the members of a group (RocketMQ's allocation strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Contiguous ranges: with 8 queues and 3 members, 3 + 3 + 2.
    #[default]
    Average,
    /// Round robin: member `i` gets queues `i`, `i + n`, `i + 2n`, ...
    AverageByCircle,
    /// A hash ring with virtual nodes: a join or leave moves only the queues of the ring
    /// segments that changed hands.
    ConsistentHash,
}

/// Virtual nodes per member on the consistent-hash ring.
const VIRTUAL_NODES: u32 = 10;

/// The queues (`queues`, any order) that `me` owns among `members` under `strategy`. Empty if
/// `me` is not a member.
pub fn assign(strategy: Strategy, me: &str, members: &[String], queues: &[u32]) -> Vec<u32> {
    let mut members: Vec<&str> = members.iter().map(String::as_str).collect();
    members.sort_unstable();
    members.dedup();
    let mut queues = queues.to_vec();
    queues.sort_unstable();
    queues.dedup();
    let Some(idx) = members.iter().position(|m| *m == me) else { return Vec::new() };
    let (n, q) = (members.len(), queues.len());
    match strategy {
        Strategy::Average => {
            // The first q % n members take one extra queue.
            let base = q / n;
            let extra = q % n;
            let start = idx * base + idx.min(extra);
            let len = base + usize::from(idx < extra);
            queues[start..start + len].to_vec()
        }
        Strategy::AverageByCircle => queues.iter().skip(idx).step_by(n).copied().collect(),
        Strategy::ConsistentHash => {
            let mut ring = BTreeMap::new();
            for m in &members {
                for v in 0..VIRTUAL_NODES {
                    ring.insert(fnv64(format!("{m}#{v}").as_bytes()), *m);
                }
            }
            queues
                .into_iter()
                .filter(|queue| {
                    let h = fnv64(format!("queue-{queue}").as_bytes());
                    let owner = ring.range(h..).next().or_else(|| ring.iter().next()).map(|(_, m)| *m);
                    owner == Some(me)
                })
                .collect()
        }
    }
}

/// FNV-1a with a final mix: stable across processes and versions (unlike `DefaultHasher`).
fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// This client's membership in a consumer group: heartbeats in the background and publishes the
/// live member list. Leaves the group when shut down or dropped.
pub struct Membership {
    members: watch::Receiver<Vec<String>>,
    stop: Stop,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Membership {
    /// Joins `group` as `client_id` through the nodes at `endpoints`; returns after the first
    /// heartbeat was answered (so [`Membership::members`] includes this client).
    pub async fn join(endpoints: &[String], group: &str, client_id: &str) -> Result<Self, ClientError> {
        let admins: Vec<AdminClient> = endpoints
            .iter()
            .map(|e| AdminClient::connect(e, Duration::from_secs(2)))
            .collect::<Result<_, _>>()?;
        if admins.is_empty() {
            return Err(ClientError::InvalidArgument("no endpoints".into()));
        }
        let first = beat(&admins, 0, group, client_id, false).await?;
        let (tx, rx) = watch::channel(first.1);
        let stop = Stop::default();
        let task = tokio::spawn(heartbeats(
            admins,
            first.0,
            group.to_string(),
            client_id.to_string(),
            tx,
            stop.clone(),
        ));
        Ok(Self { members: rx, stop, task: Some(task) })
    }

    /// The live members as last heard; changes when one joins or leaves.
    pub fn members(&self) -> watch::Receiver<Vec<String>> {
        self.members.clone()
    }

    /// Leaves the group now (the others rebalance at their next heartbeat).
    pub async fn leave(mut self) {
        self.stop.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        // The task says goodbye on its own once stopped.
        self.stop.stop();
    }
}

/// One heartbeat, trying the nodes from `start` on; returns the node that answered.
async fn beat(
    admins: &[AdminClient],
    start: usize,
    group: &str,
    client: &str,
    leaving: bool,
) -> Result<(usize, Vec<String>), ClientError> {
    let mut last = ClientError::Transport("no node answered".into());
    for k in 0..admins.len() {
        let i = (start + k) % admins.len();
        match admins[i].consumer_heartbeat(group, client, leaving).await {
            Ok(m) => return Ok((i, m)),
            Err(e @ ClientError::Status { code, .. })
                if !e.is_retryable() && code != raftmq_proto::rocketmq::Code::HaNotAvailable =>
            {
                return Err(e);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn heartbeats(
    admins: Vec<AdminClient>,
    mut node: usize,
    group: String,
    client: String,
    tx: watch::Sender<Vec<String>>,
    stop: Stop,
) {
    let admins = Arc::new(admins);
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.stopped() => break,
        }
        match beat(&admins, node, &group, &client, false).await {
            Ok((i, members)) => {
                node = i;
                tx.send_if_modified(|m| {
                    let changed = *m != members;
                    *m = members;
                    changed
                });
            }
            Err(e) => tracing::warn!(%group, error = %e, "consumer heartbeat failed; retrying"),
        }
    }
    if let Err(e) = beat(&admins, node, &group, &client, true).await {
        tracing::debug!(%group, error = %e, "leaving the group failed; the others notice in 1.2 s");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Strategy;
    use super::assign;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    /// Every queue is owned by exactly one member, for every strategy and size.
    #[test]
    fn every_queue_has_exactly_one_owner() {
        for strategy in [Strategy::Average, Strategy::AverageByCircle, Strategy::ConsistentHash] {
            for n in 1..6 {
                for q in 0..17u32 {
                    let queues: Vec<u32> = (0..q).collect();
                    let ms = members(n);
                    let mut all = Vec::new();
                    for m in &ms {
                        all.extend(assign(strategy, m, &ms, &queues));
                    }
                    all.sort_unstable();
                    assert_eq!(all, queues, "{strategy:?} n={n} q={q}");
                }
            }
        }
    }

    #[test]
    fn average_and_circle_split_as_rocketmq_does() {
        let ms = members(3);
        let q: Vec<u32> = (0..8).collect();
        assert_eq!(assign(Strategy::Average, "c0", &ms, &q), vec![0, 1, 2]);
        assert_eq!(assign(Strategy::Average, "c1", &ms, &q), vec![3, 4, 5]);
        assert_eq!(assign(Strategy::Average, "c2", &ms, &q), vec![6, 7]);
        assert_eq!(assign(Strategy::AverageByCircle, "c1", &ms, &q), vec![1, 4, 7]);
        assert!(assign(Strategy::Average, "stranger", &ms, &q).is_empty());
        // More members than queues: the last ones get nothing.
        assert!(assign(Strategy::Average, "c2", &ms, &[0, 1]).is_empty());
    }

    #[test]
    fn consistent_hash_moves_few_queues_on_a_join() {
        let q: Vec<u32> = (0..64).collect();
        let before = members(4);
        let after = members(5);
        let mut moved = 0;
        for m in &before {
            let a: BTreeSet<u32> = assign(Strategy::ConsistentHash, m, &before, &q).into_iter().collect();
            let b: BTreeSet<u32> = assign(Strategy::ConsistentHash, m, &after, &q).into_iter().collect();
            assert!(b.is_subset(&a), "{m}: a join only takes queues away");
            moved += a.len() - b.len();
        }
        assert!(moved < 32, "a fifth member took {moved} of 64 queues");
    }
}
