//! A handle to one Raft group on this node, whatever its state machine.
//!
//! `Raft<C, SM>` is a different type per state machine, so the groups are an enum and every
//! operation dispatches on it. This is the only place that calls openraft's `Raft` API; the node
//! crate sees [`Group`] and [`RaftError`] only.

use std::time::Duration;

use openraft::ReadPolicy;
use openraft::ServerState;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError as OrRaftError;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::rt::WatchReceiver;
use raftmq_storage::Command;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;
use raftmq_storage::Response;
use raftmq_storage::SnapshotFile;
use raftmq_storage::TypeConfig;
use raftmq_storage::broker::BrokerSm;
use raftmq_storage::nameserver::NameServerSm;
use raftmq_storage::types::SnapshotMeta;
use raftmq_storage::types::Vote;

use crate::error::RaftError;
use crate::status::GroupStatus;

/// openraft instance of the NameServer group.
pub type NameServerRaft = openraft::Raft<TypeConfig, NameServerSm>;
/// openraft instance of a broker group.
pub type BrokerRaft = openraft::Raft<TypeConfig, BrokerSm>;

/// The openraft instance of a group; one variant per state machine.
#[derive(Clone)]
pub enum GroupRaft {
    /// The NameServer metadata group.
    NameServer(NameServerRaft),
    /// A broker group (CommitLog).
    Broker(BrokerRaft),
}

/// One Raft group hosted by this node.
#[derive(Clone)]
pub struct Group {
    id: GroupId,
    raft: GroupRaft,
}

/// Calls the same method on whichever `Raft` the group holds.
macro_rules! on_raft {
    ($self:expr, $r:ident => $e:expr) => {
        match &$self.raft {
            GroupRaft::NameServer($r) => $e,
            GroupRaft::Broker($r) => $e,
        }
    };
}

mod membership;

impl Group {
    /// Wraps a started openraft instance.
    pub fn new(id: GroupId, raft: GroupRaft) -> Self {
        Self { id, raft }
    }

    /// Id of this group.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// Whether this node leads the group right now.
    pub fn is_leader(&self) -> bool {
        on_raft!(self, r => r.is_leader())
    }

    /// The current leader and its addresses, as this node knows them. `None` also while this
    /// node knows the leader's id but not yet its addresses (before the membership reached it).
    pub fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        on_raft!(self, r => {
            let m = r.metrics();
            let m = m.borrow_watched();
            let id = m.current_leader?;
            let info = m.membership_config.membership().get_node(&id).cloned()?;
            Some((id, info))
        })
    }

    /// The current leader's id, whether or not its addresses are known here.
    pub fn leader_id(&self) -> Option<NodeId> {
        on_raft!(self, r => r.metrics().borrow_watched().current_leader)
    }

    /// Every node of the group's current membership with its addresses, voters first.
    pub fn members(&self) -> Vec<(NodeId, NodeInfo)> {
        on_raft!(self, r => {
            let m = r.metrics();
            let m = m.borrow_watched();
            m.membership_config.membership().nodes().map(|(id, n)| (*id, n.clone())).collect()
        })
    }

    /// The group's current term.
    pub fn term(&self) -> u64 {
        on_raft!(self, r => r.metrics().borrow_watched().current_term)
    }

    /// A receiver that wakes on every metrics change (leader, term, indexes).
    pub fn watch_leader(&self) -> tokio::sync::watch::Receiver<Option<NodeId>> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let mut metrics = on_raft!(self, r => r.metrics());
        tokio::spawn(async move {
            loop {
                let leader = metrics.borrow_and_update().current_leader;
                tx.send_if_modified(|cur| {
                    let changed = *cur != leader;
                    *cur = leader;
                    changed
                });
                tokio::select! {
                    changed = metrics.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        rx
    }

    /// Proposes `cmd` and waits until it is committed and applied; returns what apply returned.
    #[tracing::instrument(level = "debug", skip_all, fields(group = %self.id()))]
    pub async fn write(&self, cmd: Command) -> Result<Response, RaftError> {
        self.write_at(cmd).await.map(|(_, r)| r)
    }

    /// [`write`](Self::write), also returning the log index of the entry that carried `cmd`.
    pub async fn write_at(&self, cmd: Command) -> Result<(u64, Response), RaftError> {
        let group = self.id();
        let res = on_raft!(self, r => r.client_write(cmd).await);
        let resp = res.map_err(|e| write_error(group, e))?;
        tracing::debug!(index = resp.log_id.index, term = resp.log_id.leader_id.term, "write applied");
        Ok((resp.log_id.index, resp.data))
    }

    /// Waits until this node's state machine is up to date with a linearizable point: a lease
    /// read while the leader's lease holds, a quorum round-trip (read index) otherwise.
    #[tracing::instrument(level = "debug", skip_all, fields(group = %self.id()))]
    pub async fn ensure_linearizable(&self) -> Result<(), RaftError> {
        let group = self.id();
        let lease = on_raft!(self, r => r.ensure_linearizable(ReadPolicy::LeaseRead).await);
        let res = match lease {
            Ok(_) => return Ok(()),
            Err(OrRaftError::APIError(openraft::errors::LinearizableReadError::QuorumNotEnough(_))) => {
                on_raft!(self, r => r.ensure_linearizable(ReadPolicy::ReadIndex).await)
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(_) => Ok(()),
            Err(OrRaftError::APIError(openraft::errors::LinearizableReadError::ForwardToLeader(f))) => {
                Err(RaftError::NotLeader { group, leader: f.leader_id.zip(f.leader_node) })
            }
            Err(OrRaftError::APIError(e)) => Err(RaftError::NoQuorum { group, reason: e.to_string() }),
            Err(OrRaftError::Fatal(f)) => Err(RaftError::Fatal { group, reason: f.to_string() }),
        }
    }

    /// Whether the group has a membership (initialized here, or joined).
    pub async fn is_initialized(&self) -> Result<bool, RaftError> {
        let group = self.id();
        on_raft!(self, r => r.is_initialized().await)
            .map_err(|f| RaftError::Fatal { group, reason: f.to_string() })
    }

    /// Initializes the group with `members` as its voters. An already initialized group is left
    /// as it is.
    pub async fn initialize(
        &self,
        members: std::collections::BTreeMap<NodeId, NodeInfo>,
    ) -> Result<(), RaftError> {
        let group = self.id();
        match on_raft!(self, r => r.initialize(members).await) {
            Ok(()) => Ok(()),
            Err(OrRaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(()),
            Err(OrRaftError::APIError(e)) => Err(RaftError::Rejected { group, reason: e.to_string() }),
            Err(OrRaftError::Fatal(f)) => Err(RaftError::Fatal { group, reason: f.to_string() }),
        }
    }

    /// This node's view of the group.
    pub fn status(&self) -> GroupStatus {
        on_raft!(self, r => GroupStatus::from_metrics(self.id(), &r.metrics().borrow_watched()))
    }

    /// Waits until `cond` holds on the group's status, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&GroupStatus) -> bool,
    ) -> Result<GroupStatus, RaftError> {
        let group = self.id();
        let mut rx = on_raft!(self, r => r.metrics());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let st = GroupStatus::from_metrics(group, &rx.borrow_and_update());
            if cond(&st) {
                return Ok(st);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(RaftError::Fatal { group, reason: "raft stopped".into() }),
                Err(_) => {
                    return Err(RaftError::NoQuorum {
                        group,
                        reason: format!("timed out waiting for {what}"),
                    });
                }
            }
        }
    }

    /// Asks this node, which must lead the group, to hand leadership to `to` (ignored when this
    /// node does not lead). Callers check that `to` has caught up first: see [`GroupStatus`].
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), RaftError> {
        let group = self.id;
        on_raft!(self, r => r.trigger().transfer_leader(to).await)
            .map_err(|f| RaftError::Fatal { group, reason: f.to_string() })
    }

    /// Builds a snapshot, waits until one covers `upto`, then lets openraft purge its log up to
    /// `upto`. Retention uses this: openraft only purges what a snapshot covers.
    pub async fn compact(&self, upto: u64, timeout: Duration) -> Result<(), RaftError> {
        let group = self.id;
        let fatal =
            |f: openraft::errors::Fatal<TypeConfig>| RaftError::Fatal { group, reason: f.to_string() };
        on_raft!(self, r => r.trigger().snapshot().await).map_err(fatal)?;
        self.wait_for(timeout, "snapshot", |st| st.snapshot.is_some_and(|s| s >= upto)).await?;
        on_raft!(self, r => r.trigger().purge_log(upto).await).map_err(fatal)?;
        Ok(())
    }

    /// openraft's runtime statistics (batch sizes, per-stage latencies), human readable.
    pub async fn runtime_stats(&self) -> Option<String> {
        on_raft!(self, r => r.runtime_stats().await)
            .ok()
            .map(|s| s.display().human_readable().multiline().to_string())
    }

    /// Stops the group's Raft tasks.
    pub async fn shutdown(&self) {
        if let Err(e) = on_raft!(self, r => r.shutdown().await) {
            tracing::warn!(group = %self.id(), error = %e, "raft shutdown failed");
        }
    }

    // ---- RPCs from peers ----

    pub(crate) async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, String> {
        on_raft!(self, r => r.append_entries(rpc).await).map_err(|e| e.to_string())
    }

    pub(crate) async fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
        pre_vote: bool,
    ) -> Result<VoteResponse<TypeConfig>, String> {
        if pre_vote {
            on_raft!(self, r => r.pre_vote(rpc).await).map_err(|e| e.to_string())
        } else {
            on_raft!(self, r => r.vote(rpc).await).map_err(|e| e.to_string())
        }
    }

    pub(crate) async fn install_snapshot(
        &self,
        vote: Vote,
        meta: SnapshotMeta,
        file: SnapshotFile,
    ) -> Result<SnapshotResponse<TypeConfig>, String> {
        let snapshot = openraft::storage::Snapshot { meta, snapshot: file };
        on_raft!(self, r => r.install_full_snapshot(vote, snapshot).await).map_err(|e| e.to_string())
    }

    pub(crate) async fn handle_transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> Result<(), String> {
        match on_raft!(self, r => r.handle_transfer_leader(req).await) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Maps openraft's answer to a write (or membership change) to [`RaftError`].
pub(crate) fn write_error(
    group: GroupId,
    e: OrRaftError<TypeConfig, ClientWriteError<TypeConfig>>,
) -> RaftError {
    match e {
        OrRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            RaftError::NotLeader { group, leader: f.leader_id.zip(f.leader_node) }
        }
        OrRaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
            RaftError::Indeterminate { group, leader: f.leader_id.zip(f.leader_node) }
        }
        OrRaftError::APIError(e) => RaftError::Rejected { group, reason: e.to_string() },
        OrRaftError::Fatal(f) => RaftError::Fatal { group, reason: f.to_string() },
    }
}

/// Role names as `cluster status` prints them.
pub(crate) fn role_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
