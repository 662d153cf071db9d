//! The node's handle on the NameServer group: proposals on the leader, linearizable reads, and
//! the leader's duty of keeping the cluster layout recorded.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::admin as admin_pb;
use raftmq_proto::admin::admin_service_client::AdminServiceClient;
use raftmq_raft::Group;
use raftmq_raft::RaftHost;
use raftmq_storage::Command;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;
use raftmq_storage::Response;
use raftmq_storage::nameserver::BrokerGroupSpec;
use raftmq_storage::nameserver::GroupSpec;
use raftmq_storage::nameserver::Member;
use raftmq_storage::nameserver::MetaCommand;
use raftmq_storage::nameserver::MetaResponse;
use raftmq_storage::nameserver::MetaState;
use raftmq_storage::nameserver::SharedMeta;
use raftmq_storage::nameserver::TopicSpec;
use tokio::sync::Notify;
use tokio::sync::watch;

use crate::broker::Brokers;
use crate::clock::now_ms;
use crate::config::NodeConfig;
use crate::error::BrokerError;
use crate::forward::ClientChannels;
use crate::grpc::context::leader_ok;

/// Longest wait for this node to catch up with the NameServer leader before a current read.
const READ_BARRIER_TIMEOUT: Duration = Duration::from_secs(2);

/// Deadline of a request to the NameServer leader made on a client's behalf.
const LEADER_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The NameServer as seen from this node.
#[derive(Clone)]
pub struct NameServer {
    group: Group,
    host: Arc<RaftHost>,
    meta: SharedMeta,
    /// Addresses from this node's config: known before any membership reached the node.
    configured: Arc<BTreeMap<NodeId, NodeInfo>>,
    /// Channels to other nodes' client ports (the leader's admin service).
    channels: Arc<ClientChannels>,
}

impl NameServer {
    /// Wraps the started NameServer group; `configured` are the addresses the config lists;
    /// `channels` reach the other nodes' client ports.
    pub fn new(
        group: Group,
        host: Arc<RaftHost>,
        meta: SharedMeta,
        configured: BTreeMap<NodeId, NodeInfo>,
        channels: Arc<ClientChannels>,
    ) -> Self {
        Self { group, host, meta, configured: Arc::new(configured), channels }
    }

    /// Creates topic `spec` on a client's behalf: proposed here if this node leads, else asked
    /// of the leader's admin service (marked forwarded).
    pub async fn create_topic_for_client(&self, spec: TopicSpec) -> Result<(), BrokerError> {
        if self.is_leader() {
            return self.propose(MetaCommand::CreateTopic { spec, now_ms: now_ms() }).await.map(|_| ());
        }
        let msg = admin_pb::CreateTopicRequest {
            name: spec.name,
            message_type: spec.message_type.as_str().to_string(),
            queue_count: spec.queue_count,
            ..Default::default()
        };
        let (leader, mut admin, req) = self.to_leader(msg)?;
        let resp = admin.create_topic(req).await.map_err(|s| leader_silent(leader, &s))?.into_inner();
        leader_ok(resp.status)
    }

    /// Creates consumer group `spec` on a client's behalf, here or through the leader.
    pub async fn create_group_for_client(&self, spec: GroupSpec) -> Result<(), BrokerError> {
        if self.is_leader() {
            return self.propose(MetaCommand::CreateGroup { spec, now_ms: now_ms() }).await.map(|_| ());
        }
        let msg = admin_pb::CreateGroupRequest {
            name: spec.name,
            mode: spec.mode.as_str().to_string(),
            fifo: spec.fifo,
            max_delivery_attempts: spec.max_delivery_attempts,
            consume_from: spec.consume_from.to_text(),
        };
        let (leader, mut admin, req) = self.to_leader(msg)?;
        let resp = admin.create_group(req).await.map_err(|s| leader_silent(leader, &s))?.into_inner();
        leader_ok(resp.status)
    }

    /// The admin service of the NameServer leader and `msg` as a request to it (marked
    /// forwarded, with a deadline).
    fn to_leader<T>(
        &self,
        msg: T,
    ) -> Result<(NodeId, AdminServiceClient<tonic::transport::Channel>, tonic::Request<T>), BrokerError> {
        let (leader, info) = self.leader().ok_or_else(|| {
            BrokerError::Unavailable("the NameServer has no leader right now; retry".into())
        })?;
        let ch = self.channels.get(&info.client_addr).map_err(BrokerError::Internal)?;
        let mut req = tonic::Request::new(msg);
        req.set_timeout(LEADER_REQUEST_TIMEOUT);
        crate::forward::mark_forwarded(&mut req, self.host.node_id());
        Ok((leader, AdminServiceClient::new(ch), req))
    }

    /// Where node `id` is: from the Raft membership, else the NameServer's member records, else
    /// this node's config.
    pub fn node_info(&self, id: NodeId) -> Option<NodeInfo> {
        if let Some((_, n)) = self.group.members().into_iter().find(|(n, _)| *n == id) {
            return Some(n);
        }
        if let Some(m) = self.meta.read(|s| s.members.get(&id).cloned()) {
            return Some(NodeInfo::new(m.raft_addr, m.client_addr));
        }
        self.configured.get(&id).cloned()
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
        self.group.leader().or_else(|| {
            let id = self.group.leader_id()?;
            Some((id, self.node_info(id)?))
        })
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

    /// Reads this node's copy of the metadata once it has applied what the leader had committed
    /// (on any node, leader or not): it sees every change acknowledged before the call.
    pub async fn read_current<R>(&self, f: impl FnOnce(&MetaState) -> R) -> Result<R, BrokerError> {
        self.host.read_barrier(&self.group, READ_BARRIER_TIMEOUT).await?;
        Ok(self.meta.read(f))
    }

    /// Reads this node's copy of the metadata, which may lag the leader by a moment.
    pub fn read_local<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        self.meta.read(f)
    }

    /// Ids of removed (or being removed) nodes, as this node's copy has them: never preferred
    /// as leaders, never added again.
    pub fn retired(&self) -> Vec<NodeId> {
        self.read_local(|s| s.retired.iter().copied().collect())
    }
}

/// Initializes `group` on a brand-new cluster, once.
///
/// Only a node listed in `initial_members` does it, only when its own replica is empty, and only
/// when no reachable peer already has a membership for the group (so a wiped node rejoins instead
/// of founding a second cluster). Nodes that start together may all initialize: with identical
/// members, openraft guarantees one leader.
pub async fn initialize_if_new(
    host: &RaftHost,
    group: &Group,
    config: &NodeConfig,
) -> Result<(), StartError> {
    if group.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))? {
        return Ok(());
    }
    let mut formed = false;
    for m in config.initial_members.iter().filter(|m| m.id != config.node_id) {
        if let Ok(st) = host.remote_status(m.id, group.id(), Duration::from_millis(500)).await {
            formed |= !st.voters.is_empty();
        }
    }
    if formed {
        tracing::info!(group = %group.id(), "group already formed: waiting for its leader");
        return Ok(());
    }
    if !config.initial_members.iter().any(|m| m.id == config.node_id) {
        tracing::info!(group = %group.id(), node = config.node_id, "not an initial member: waiting to be added");
        return Ok(());
    }
    let members: BTreeMap<NodeId, NodeInfo> = config
        .initial_members
        .iter()
        .map(|m| (m.id, NodeInfo::new(m.raft_addr.clone(), m.client_addr.clone())))
        .collect();
    tracing::info!(group = %group.id(), members = ?members.keys().collect::<Vec<_>>(), "initializing a new group");
    group.initialize(members).await.map_err(|e| StartError::Raft(e.to_string()))?;
    Ok(())
}

/// Refuses to start a node whose store is new while the cluster already replicated to its id:
/// its data was lost or wiped, and rejoining under the same id would let its log and its vote
/// go backwards (a vote given before the wipe could be given again). Runs before any group
/// answers peers. A node that never received anything is fine (first start, or a new node).
pub async fn check_not_wiped(host: &RaftHost, config: &NodeConfig) -> Result<(), StartError> {
    let groups = std::iter::once(GroupId::NAMESERVER).chain((1..=config.broker_groups).map(GroupId::broker));
    for g in groups {
        for m in config.initial_members.iter().filter(|m| m.id != config.node_id) {
            let Ok(st) = host.remote_status(m.id, g, Duration::from_millis(500)).await else { continue };
            if let Some((_, Some(matched))) = st.replication.iter().find(|(n, _)| *n == config.node_id) {
                return Err(StartError::Wiped { group: g.name(), node: config.node_id, matched: *matched });
            }
        }
    }
    Ok(())
}

/// Why a node refuses to join its groups.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is empty, yet the cluster already replicated to this node id.
    #[error(
        "the data directory is empty, but {group} already replicated up to index {matched} to node {node}: \
         its data was lost or wiped. A node id is never reused: start this node with a new node_id and \
         replace node {node} in the cluster"
    )]
    Wiped {
        /// The group that noticed.
        group: String,
        /// This node.
        node: NodeId,
        /// What the leader had matched on this node.
        matched: u64,
    },
    /// Raft failed.
    #[error("raft: {0}")]
    Raft(String),
}

/// While this node leads the NameServer: records the cluster layout once, keeps the member records
/// in step with the Raft membership (addresses may change across restarts), and records every
/// broker group's leader and term as soon as they change (this node hosts a replica of each, so
/// it sees a new leader within a heartbeat).
pub async fn leader_duties(
    ns: NameServer,
    config: NodeConfig,
    brokers: Brokers,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut applied = ns.meta.subscribe();
    let changed = Arc::new(Notify::new());
    let mut watchers = tokio::task::JoinSet::new();
    for b in brokers.all() {
        let mut rx = b.group.watch_leader();
        let changed = changed.clone();
        watchers.spawn(async move {
            while rx.changed().await.is_ok() {
                changed.notify_one();
            }
        });
    }
    loop {
        if ns.is_leader() {
            if let Err(e) = sync_layout(&ns, &config, &brokers).await {
                tracing::warn!(error = %e, "cannot record the cluster layout yet");
            } else if let Err(e) = report_leaders(&ns, &brokers).await {
                tracing::warn!(error = %e, "cannot record broker leaders");
            }
        }
        tokio::select! {
            _ = applied.changed() => {}
            () = changed.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn report_leaders(ns: &NameServer, brokers: &Brokers) -> Result<(), BrokerError> {
    for b in brokers.all() {
        let Some((leader, _)) = b.group.leader() else { continue };
        let term = b.group.term();
        let id = b.group.id().0;
        let recorded = ns.read_local(|s| s.broker_groups.get(&id).map(|g| (g.leader, g.term)));
        if recorded.is_some_and(|(l, t)| l != Some(leader) || t < term) {
            ns.propose(MetaCommand::ReportLeader { group: id, leader, term }).await?;
            tracing::info!(group = %b.group.id(), leader, term, "recorded broker group leader");
        }
    }
    Ok(())
}

async fn sync_layout(ns: &NameServer, config: &NodeConfig, brokers: &Brokers) -> Result<(), BrokerError> {
    // The Remoting address is announced by each node (`announce_remoting`), not part of the
    // Raft membership: keep the recorded one so that records do not look stale.
    let members: Vec<Member> = ns.read_local(|s| {
        ns.group
            .members()
            .into_iter()
            .map(|(id, n)| Member {
                id,
                raft_addr: n.raft_addr,
                client_addr: n.client_addr,
                remoting_addr: s.members.get(&id).and_then(|m| m.remoting_addr.clone()),
            })
            .collect()
    });
    let (initialized, stale, gone) = ns.read_local(|s| {
        let stale: Vec<Member> = members
            .iter()
            .filter(|m| s.members.get(&m.id) != Some(*m) && !s.retired.contains(&m.id))
            .cloned()
            .collect();
        // Removed nodes that have left the NameServer group: their records go.
        let gone: Vec<NodeId> = s
            .members
            .keys()
            .filter(|id| s.retired.contains(id) && !members.iter().any(|m| m.id == **id))
            .copied()
            .collect();
        (s.initialized, stale, gone)
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
    for id in gone {
        ns.propose(MetaCommand::ForgetMember { id }).await?;
        tracing::info!(node = id, "forgot the record of a removed node");
    }
    // Each broker group's replicas as its Raft membership has them (after node add or remove),
    // from replicas that still vote: a removed replica's view of the membership is frozen.
    for b in brokers.all() {
        let group = b.group.id().0;
        let st = b.group.status();
        if !st.voters.contains(&st.node_id) {
            continue;
        }
        let voters: BTreeSet<NodeId> = st.voters.into_iter().collect();
        let recorded = ns.read_local(|s| s.broker_groups.get(&group).map(|g| g.members.clone()));
        if recorded.is_some_and(|r| r != voters) {
            ns.propose(MetaCommand::SetBrokerMembers { group, members: voters }).await?;
        }
    }
    Ok(())
}

/// The error for a NameServer leader that did not answer.
fn leader_silent(leader: NodeId, s: &tonic::Status) -> BrokerError {
    BrokerError::Unavailable(format!("NameServer leader {leader} did not answer: {}", s.message()))
}

/// Until this node's Remoting address `addr` is in the NameServer's member record of `id`:
/// announces it (proposed here when this node leads the NameServer, else through the leader's
/// admin service), then checks again every few seconds (a new record after a membership change
/// starts without it).
pub async fn announce_remoting(
    ns: NameServer,
    id: NodeId,
    addr: String,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let recorded = ns.read_local(|s| s.members.get(&id).map(|m| m.remoting_addr.clone()));
        let wait = match recorded {
            Some(Some(a)) if a == addr => Duration::from_secs(5),
            // Not a member record yet (the layout is recorded first): wait for it.
            None => Duration::from_millis(500),
            Some(_) => match announce_once(&ns, id, &addr).await {
                Ok(()) => {
                    tracing::info!(node = id, addr = %addr, "announced the remoting address");
                    Duration::from_millis(200)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot announce the remoting address yet");
                    Duration::from_millis(500)
                }
            },
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn announce_once(ns: &NameServer, id: NodeId, addr: &str) -> Result<(), BrokerError> {
    if ns.is_leader() {
        return ns
            .propose(MetaCommand::SetRemotingAddr { id, addr: Some(addr.to_string()) })
            .await
            .map(|_| ());
    }
    let (leader, mut admin, req) =
        ns.to_leader(admin_pb::AnnounceRemotingRequest { node_id: id, addr: addr.to_string() })?;
    let resp = admin.announce_remoting(req).await.map_err(|s| leader_silent(leader, &s))?.into_inner();
    leader_ok(resp.status)
}
