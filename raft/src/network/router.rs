//! The sending side of the Raft transport: openraft-multi's `GroupRouter` over the peer pool.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use openraft::OptionalSend;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft_multi::GroupNetworkAdapter;
use openraft_multi::GroupRouter;
use raftmq_proto::raft as pbm;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;
use raftmq_storage::SnapshotFile;
use raftmq_storage::TypeConfig;
use raftmq_storage::codec::Writer;
use raftmq_storage::raft_codec;
use raftmq_storage::types::Vote;
use tokio::io::AsyncReadExt;
use tonic::Code;

use super::peers::PeerPool;
use crate::pb;

/// Bytes of snapshot file per streamed chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// Routes every group's RPCs to peers over the shared channels.
#[derive(Clone)]
pub struct RaftRouter {
    peers: Arc<PeerPool>,
}

impl RaftRouter {
    /// A router over `peers`.
    pub fn new(peers: Arc<PeerPool>) -> Self {
        Self { peers }
    }

    fn client(
        &self,
        target: NodeId,
    ) -> Result<pbm::raft_service_client::RaftServiceClient<tonic::transport::Channel>, Unreachable<TypeConfig>>
    {
        self.peers
            .client(target)
            .ok_or_else(|| Unreachable::from_string(format!("no address for node {target}")))
    }
}

/// Maps a failed call: connection trouble is `Unreachable` (openraft backs off), the rest is a
/// network error (retried).
fn rpc_error(target: NodeId, s: tonic::Status) -> RPCError<TypeConfig> {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            RPCError::Unreachable(Unreachable::from_string(format!("node {target}: {}", s.message())))
        }
        _ => RPCError::Network(NetworkError::from_string(format!("node {target}: {s}"))),
    }
}

fn decode_error(target: NodeId, e: raftmq_storage::DecodeError) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!("node {target}: malformed answer: {e}")))
}

fn request<T>(msg: T, option: &RPCOption) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(option.hard_ttl());
    r
}

impl GroupRouter<TypeConfig, GroupId> for RaftRouter {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client(target)?;
        let req = request(pb::append_request(group, &rpc), &option);
        let resp = client.append_entries(req).await.map_err(|s| rpc_error(target, s))?;
        pb::from_append_response(resp.into_inner()).map_err(|e| decode_error(target, e))
    }

    async fn vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client(target)?;
        let resp = client
            .vote(request(pb::vote_request(group, &rpc, false), &option))
            .await
            .map_err(|s| rpc_error(target, s))?;
        pb::from_vote_response(&resp.into_inner()).map_err(|e| decode_error(target, e))
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client(target)?;
        let resp = client
            .vote(request(pb::vote_request(group, &rpc, true), &option))
            .await
            .map_err(|s| rpc_error(target, s))?;
        pb::from_vote_response(&resp.into_inner()).map_err(|e| decode_error(target, e))
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        vote: Vote,
        snapshot: openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client(target)?;
        let unreachable = |e: String| StreamingError::Unreachable(Unreachable::from_string(e));
        let file = tokio::fs::File::open(&snapshot.snapshot.path).await.map_err(|e| {
            unreachable(format!("cannot open snapshot {}: {e}", snapshot.snapshot.path.display()))
        })?;
        let mut meta = Writer::default();
        raft_codec::put_snapshot_meta(&mut meta, &snapshot.meta);
        let header = pbm::SnapshotChunk {
            part: Some(pbm::snapshot_chunk::Part::Header(pbm::snapshot_chunk::Header {
                group: group.0,
                vote: Some(pb::vote(&vote)),
                meta: meta.into_vec().into(),
                len: snapshot.snapshot.len,
            })),
        };
        // Read the file chunk by chunk as the stream is polled; memory stays at one chunk.
        let chunks = futures::stream::unfold(Some(file), |state| async move {
            let mut file = state?;
            let chunk = next_chunk(&mut file).await?;
            Some((chunk, Some(file)))
        });
        let stream = futures::stream::once(async { header }).chain(chunks);
        tracing::info!(%group, target, bytes = snapshot.snapshot.len, "sending snapshot");
        let mut req = tonic::Request::new(stream);
        req.set_timeout(option.hard_ttl());
        let call = client.install_snapshot(req);
        let resp = tokio::select! {
            r = call => r.map_err(|s| match rpc_error(target, s) {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                other => StreamingError::Network(NetworkError::from_string(other.to_string())),
            })?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let v = pb::from_vote(resp.into_inner().vote.as_ref())
            .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))?;
        Ok(SnapshotResponse::new(v))
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group: GroupId,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client(target)?;
        client
            .transfer_leader(request(pb::transfer_request(group, &req), &option))
            .await
            .map_err(|s| rpc_error(target, s))?;
        Ok(Ok(()))
    }
}

/// The next chunk of a snapshot file, `None` at its end. A read error ends the stream early; the
/// receiver then fails the snapshot's checksum.
async fn next_chunk(file: &mut tokio::fs::File) -> Option<pbm::SnapshotChunk> {
    let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => {
                tracing::error!(error = %e, "reading snapshot file failed");
                return None;
            }
        }
    }
    if filled == 0 {
        return None;
    }
    buf.truncate(filled);
    Some(pbm::SnapshotChunk { part: Some(pbm::snapshot_chunk::Part::Data(buf.into())) })
}

/// The network factory openraft gets for one group: the shared router bound to a group id.
#[derive(Clone)]
pub struct GroupNetwork {
    router: RaftRouter,
    group: GroupId,
}

impl GroupNetwork {
    /// `router`'s RPCs for `group`.
    pub fn new(router: RaftRouter, group: GroupId) -> Self {
        Self { router, group }
    }
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    type Network = GroupNetworkAdapter<TypeConfig, GroupId, RaftRouter>;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        // The membership carries every node's address: keep the pool in step with it.
        self.router.peers.set_addr(target, &node.raft_addr);
        GroupNetworkAdapter::new(self.router.clone(), target, self.group)
    }
}
