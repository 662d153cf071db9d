//! The node's handle on the NameServer group: proposals on the leader, linearizable reads, and
//! the leader's duty of keeping the cluster layout recorded.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use raftmq_raft::Group;
use raftmq_raft::RaftHost;
use raftmq_storage::Command;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;
use raftmq_storage::Response;
use raftmq_storage::nameserver::BrokerGroupSpec;
use raftmq_storage::nameserver::Member;
use raftmq_storage::nameserver::MetaCommand;
use raftmq_storage::nameserver::MetaResponse;
use raftmq_storage::nameserver::MetaState;
use raftmq_storage::nameserver::SharedMeta;
use tokio::sync::watch;

use crate::config::NodeConfig;
use crate::error::BrokerError;

/// The NameServer as seen from this node.
#[derive(Clone)]
pub struct NameServer {
    group: Group,
    meta: SharedMeta,
}

impl NameServer {
    /// Wraps the started NameServer group.
    pub fn new(group: Group, meta: SharedMeta) -> Self {
        Self { group, meta }
    }

    /// The Raft group.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// Whether this node leads the NameServer.
    pub fn is_leader(&self) -> bool {
        self.group.is_leader()
    }

    /// The NameServer leader, if known.
    pub fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        self.group.leader()
    }

    /// Proposes `cmd` through this node, which must be the leader. The leader stamps times into
    /// the command before this call; apply decides.
    pub async fn propose(&self, cmd: MetaCommand) -> Result<MetaResponse, BrokerError> {
        // Refuse what cannot apply without spending a log entry; apply checks again.
        self.meta.read(|s| s.check(&cmd))?;
        match self.group.write(Command::Meta(cmd)).await? {
            Response::Meta(MetaResponse::Rejected(e)) => Err(e.into()),
            Response::Meta(r) => Ok(r),
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }

    /// Reads the metadata after making sure it is current (linearizable).
    pub async fn read<R>(&self, f: impl FnOnce(&MetaState) -> R) -> Result<R, BrokerError> {
        self.group.ensure_linearizable().await?;
        Ok(self.meta.read(f))
    }

    /// Reads this node's copy of the metadata, which may lag the leader by a moment.
    pub fn read_local<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        self.meta.read(f)
    }
}

/// Initializes the NameServer group on a brand-new cluster, once.
///
/// Only a node listed in `initial_members` does it, only when its own group is empty, and only
/// when no reachable peer already has a membership (so a wiped node rejoins instead of founding a
/// second cluster). Nodes that start together may all initialize: with identical members, openraft
/// guarantees one leader.
pub async fn initialize_if_new(
    host: &RaftHost,
    ns: &NameServer,
    config: &NodeConfig,
) -> Result<(), BrokerError> {
    if ns.group.is_initialized().await? {
        return Ok(());
    }
    if !config.initial_members.iter().any(|m| m.id == config.node_id) {
        tracing::info!(node = config.node_id, "not an initial member: waiting to be added to the cluster");
        return Ok(());
    }
    for m in config.initial_members.iter().filter(|m| m.id != config.node_id) {
        if let Ok(st) = host.remote_status(m.id, GroupId::NAMESERVER, Duration::from_millis(500)).await
            && !st.voters.is_empty()
        {
            tracing::info!(
                peer = m.id,
                term = st.term,
                "cluster already formed: waiting for the leader to contact us"
            );
            return Ok(());
        }
    }
    let members: BTreeMap<NodeId, NodeInfo> = config
        .initial_members
        .iter()
        .map(|m| (m.id, NodeInfo::new(m.raft_addr.clone(), m.client_addr.clone())))
        .collect();
    tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "initializing a new cluster");
    ns.group.initialize(members).await?;
    Ok(())
}

/// While this node leads the NameServer: records the cluster layout once, and keeps the member
/// records in step with the Raft membership (addresses may change across restarts).
pub async fn leader_duties(ns: NameServer, config: NodeConfig, mut shutdown: watch::Receiver<bool>) {
    let mut applied = ns.meta.subscribe();
    loop {
        if ns.is_leader()
            && let Err(e) = sync_layout(&ns, &config).await
        {
            tracing::warn!(error = %e, "cannot record the cluster layout yet");
        }
        tokio::select! {
            _ = applied.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn sync_layout(ns: &NameServer, config: &NodeConfig) -> Result<(), BrokerError> {
    let members: Vec<Member> = ns
        .group
        .members()
        .into_iter()
        .map(|(id, n)| Member { id, raft_addr: n.raft_addr, client_addr: n.client_addr })
        .collect();
    let (initialized, stale) = ns.read_local(|s| {
        let stale: Vec<Member> =
            members.iter().filter(|m| s.members.get(&m.id) != Some(*m)).cloned().collect();
        (s.initialized, stale)
    });
    if !initialized {
        let ids: BTreeSet<NodeId> = members.iter().map(|m| m.id).collect();
        let broker_groups =
            (1..=config.broker_groups).map(|id| BrokerGroupSpec { id, members: ids.clone() }).collect();
        ns.propose(MetaCommand::InitCluster { members: members.clone(), broker_groups }).await?;
        tracing::info!(broker_groups = config.broker_groups, "recorded the cluster layout");
        return Ok(());
    }
    for member in stale {
        ns.propose(MetaCommand::UpsertMember { member }).await?;
    }
    Ok(())
}
