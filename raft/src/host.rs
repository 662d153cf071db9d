//! Everything Raft on one node: the peer pool, the router, the hosted groups and the service
//! peers call. The node crate starts groups through this and never touches openraft itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::raft as pbm;
use raftmq_proto::raft::raft_service_server::RaftServiceServer;
use raftmq_storage::GroupId;
use raftmq_storage::LogStore;
use raftmq_storage::LogStoreOptions;
use raftmq_storage::NodeId;
use raftmq_storage::PurgeMode;
use raftmq_storage::Store;
use raftmq_storage::broker::BrokerSm;
use raftmq_storage::broker::SharedBroker;
use raftmq_storage::nameserver::NameServerSm;
use raftmq_storage::nameserver::SharedMeta;

use crate::config::GroupKind;
use crate::config::RaftSettings;
use crate::config::openraft_config;
use crate::error::RaftError;
use crate::group::Group;
use crate::group::GroupRaft;
use crate::groups::Groups;
use crate::network::peers::INTERNAL_MESSAGE_BYTES_MAX;
use crate::network::peers::PeerPool;
use crate::network::router::GroupNetwork;
use crate::network::router::RaftRouter;
use crate::network::service::RaftServiceImpl;
use crate::status::GroupStatus;

/// The Raft side of a node.
pub struct RaftHost {
    node_id: NodeId,
    store: Arc<Store>,
    peers: Arc<PeerPool>,
    router: RaftRouter,
    groups: Groups,
    timeouts: RaftSettings,
}

impl RaftHost {
    /// A host for node `node_id` over `store`; no group runs yet.
    /// With `source`, connections to peers leave from that local address.
    pub fn new(node_id: NodeId, store: Arc<Store>, timeouts: RaftSettings, source: Option<IpAddr>) -> Self {
        let peers = Arc::new(PeerPool::with_source(source));
        let router = RaftRouter::new(peers.clone());
        Self { node_id, store, peers, router, groups: Groups::default(), timeouts }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The tonic service peers call; mount it on the internal port.
    pub fn service(&self) -> RaftServiceServer<RaftServiceImpl> {
        RaftServiceServer::new(RaftServiceImpl::new(self.groups.clone(), self.store.clone()))
            .max_decoding_message_size(INTERNAL_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(INTERNAL_MESSAGE_BYTES_MAX)
    }

    /// Records where node `id` serves Raft traffic (from config, before memberships say so).
    pub fn set_peer_addr(&self, id: NodeId, raft_addr: &str) {
        self.peers.set_addr(id, raft_addr);
    }

    /// The hosted groups.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Opens the NameServer group's log and state machine and starts its Raft.
    pub async fn start_nameserver(&self) -> Result<(Group, SharedMeta), RaftError> {
        let id = GroupId::NAMESERVER;
        let fatal = |reason: String| RaftError::Fatal { group: id, reason };
        let store = self.store.clone();
        let (log, sm) = tokio::task::spawn_blocking(move || {
            let opts = LogStoreOptions { purge_mode: PurgeMode::Delete, ..Default::default() };
            let log = LogStore::open(store.clone(), id, opts)?;
            let sm = NameServerSm::open(store, id, log.clone())?;
            Ok::<_, raftmq_storage::StorageError>((log, sm))
        })
        .await
        .map_err(|e| fatal(e.to_string()))?
        .map_err(|e| fatal(e.to_string()))?;
        let shared = sm.shared();
        let config = openraft_config(&id.name(), GroupKind::NameServer, &self.timeouts).map_err(fatal)?;
        let network = GroupNetwork::new(self.router.clone(), id);
        let raft = openraft::Raft::new(self.node_id, config, network, log, sm)
            .await
            .map_err(|e| fatal(e.to_string()))?;
        let group = Group::new(id, GroupRaft::NameServer(raft));
        self.groups.insert(group.clone());
        tracing::info!(group = %id, node = self.node_id, "raft group started");
        Ok((group, shared))
    }

    /// Opens broker group `id`'s log (the CommitLog) and state machine and starts its Raft.
    pub async fn start_broker(
        &self,
        id: GroupId,
        tail_cache_bytes: usize,
    ) -> Result<(Group, SharedBroker), RaftError> {
        let fatal = |reason: String| RaftError::Fatal { group: id, reason };
        let store = self.store.clone();
        let sm = tokio::task::spawn_blocking(move || {
            let opts = LogStoreOptions {
                purge_mode: PurgeMode::KeepForRetention,
                tail_cache_bytes,
                ..Default::default()
            };
            let log = LogStore::open(store.clone(), id, opts)?;
            let sm = BrokerSm::open(store, id, log.clone())?;
            Ok::<_, raftmq_storage::StorageError>((log, sm))
        })
        .await
        .map_err(|e| fatal(e.to_string()))?
        .map_err(|e| fatal(e.to_string()))?;
        let (log, sm) = sm;
        let shared = sm.shared();
        let config = openraft_config(&id.name(), GroupKind::Broker, &self.timeouts).map_err(fatal)?;
        let network = GroupNetwork::new(self.router.clone(), id);
        let raft = openraft::Raft::new(self.node_id, config, network, log, sm)
            .await
            .map_err(|e| fatal(e.to_string()))?;
        let group = Group::new(id, GroupRaft::Broker(raft));
        self.groups.insert(group.clone());
        tracing::info!(group = %id, node = self.node_id, "raft group started");
        Ok((group, shared))
    }

    /// Asks node `node` for its view of `group` over the internal port.
    pub async fn remote_status(
        &self,
        node: NodeId,
        group: GroupId,
        timeout: Duration,
    ) -> Result<GroupStatus, String> {
        if node == self.node_id {
            return self.groups.get(group).map(|g| g.status()).map_err(|e| e.to_string());
        }
        let mut client = self.peers.client(node).ok_or_else(|| format!("no address for node {node}"))?;
        let mut req = tonic::Request::new(pbm::GroupStatusRequest { group: group.0 });
        req.set_timeout(timeout);
        let resp = client.group_status(req).await.map_err(|s| s.message().to_string())?;
        Ok(GroupStatus::from_pb(&resp.into_inner()))
    }

    /// Waits until this node's replica of `group` has applied everything its leader had
    /// committed when asked (a read index taken from the leader), so a local read after it sees
    /// every write acknowledged before the call. On the leader it is a linearizable-read check.
    pub async fn read_barrier(&self, group: &crate::Group, timeout: Duration) -> Result<(), RaftError> {
        let id = group.id();
        let Some(leader) = group.leader_id() else {
            return Err(RaftError::NoQuorum { group: id, reason: "no leader known".into() });
        };
        if leader == self.node_id {
            return group.ensure_linearizable().await;
        }
        let st = self
            .remote_status(leader, id, timeout)
            .await
            .map_err(|reason| RaftError::NoQuorum { group: id, reason })?;
        let Some(committed) = st.committed else { return Ok(()) };
        group
            .wait_for(timeout, "the leader's commit index to apply here", |s| {
                s.applied.is_some_and(|a| a >= committed)
            })
            .await
            .map(|_| ())
    }

    /// Stops every group.
    pub async fn shutdown(&self) {
        self.groups.shutdown().await;
    }
}
