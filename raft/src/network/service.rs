//! The receiving side of the Raft transport: the internal `RaftService`, routing by group id.
//! Only peer nodes may reach it (internal port).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use raftmq_proto::raft as pbm;
use raftmq_proto::raft::raft_service_server::RaftService;
use raftmq_storage::GroupId;
use raftmq_storage::SnapshotFile;
use raftmq_storage::Store;
use raftmq_storage::codec::Reader;
use raftmq_storage::raft_codec;
use raftmq_storage::snapshot;
use tokio::io::AsyncWriteExt;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use crate::error::RaftError;
use crate::groups::Groups;
use crate::pb;

/// Serves Raft RPCs for every group in [`Groups`].
pub struct RaftServiceImpl {
    groups: Groups,
    store: Arc<Store>,
    incoming: AtomicU64,
}

impl RaftServiceImpl {
    /// A service over the node's groups; snapshots are spooled under `store`'s directory.
    pub fn new(groups: Groups, store: Arc<Store>) -> Self {
        Self { groups, store, incoming: AtomicU64::new(0) }
    }

    fn group(&self, id: u32) -> Result<crate::group::Group, Status> {
        self.groups.get(GroupId(id)).map_err(|e| match e {
            // The group may still be starting: the sender backs off and retries.
            RaftError::GroupNotFound(g) => {
                Status::unavailable(format!("{g} is not hosted on this node (yet)"))
            }
            other => Status::internal(other.to_string()),
        })
    }
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

#[tonic::async_trait]
impl RaftService for RaftServiceImpl {
    #[tracing::instrument(level = "trace", skip_all, fields(group = req.get_ref().group, n = req.get_ref().entries.len()))]
    async fn append_entries(
        &self,
        req: Request<pbm::AppendEntriesRequest>,
    ) -> Result<Response<pbm::AppendEntriesResponse>, Status> {
        let req = req.into_inner();
        let group = self.group(req.group)?;
        let rpc = pb::from_append_request(req).map_err(bad)?;
        let resp = group.append_entries(rpc).await.map_err(Status::unavailable)?;
        Ok(Response::new(pb::append_response(&resp)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = req.get_ref().group, pre_vote = req.get_ref().pre_vote))]
    async fn vote(&self, req: Request<pbm::VoteRequest>) -> Result<Response<pbm::VoteResponse>, Status> {
        let req = req.into_inner();
        let group = self.group(req.group)?;
        let rpc = pb::from_vote_request(&req).map_err(bad)?;
        let resp = group.vote(rpc, req.pre_vote).await.map_err(Status::unavailable)?;
        Ok(Response::new(pb::vote_response(&resp)))
    }

    #[tracing::instrument(level = "info", skip_all)]
    async fn install_snapshot(
        &self,
        req: Request<Streaming<pbm::SnapshotChunk>>,
    ) -> Result<Response<pbm::SnapshotResponse>, Status> {
        let mut stream = req.into_inner();
        let header = match stream.next().await {
            Some(Ok(pbm::SnapshotChunk { part: Some(pbm::snapshot_chunk::Part::Header(h)) })) => h,
            Some(Err(e)) => return Err(e),
            _ => return Err(bad("snapshot stream must start with a header")),
        };
        let group = self.group(header.group)?;
        let vote = pb::from_vote(header.vote.as_ref()).map_err(bad)?;
        let meta =
            raft_codec::get_snapshot_meta(&mut Reader::new(&header.meta, "snapshot meta")).map_err(bad)?;
        let dir = self.store.snapshot_dir(group.id());
        tokio::fs::create_dir_all(&dir).await.map_err(|e| Status::internal(e.to_string()))?;
        let path = snapshot::incoming_path(&dir, self.incoming.fetch_add(1, Ordering::Relaxed));
        let mut file = tokio::fs::File::create(&path).await.map_err(|e| Status::internal(e.to_string()))?;
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk?.part {
                Some(pbm::snapshot_chunk::Part::Data(d)) => {
                    len += d.len() as u64;
                    if len > header.len {
                        let _ = tokio::fs::remove_file(&path).await;
                        return Err(bad(format!("snapshot longer than announced ({} bytes)", header.len)));
                    }
                    file.write_all(&d).await.map_err(|e| Status::internal(e.to_string()))?;
                }
                _ => return Err(bad("unexpected second snapshot header")),
            }
        }
        file.sync_all().await.map_err(|e| Status::internal(e.to_string()))?;
        drop(file);
        if len != header.len {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(bad(format!("snapshot truncated: got {len} of {} bytes", header.len)));
        }
        tracing::info!(group = %group.id(), bytes = len, last = ?meta.last_log_id, "received snapshot");
        let resp = group
            .install_snapshot(vote, meta, SnapshotFile { path: path.clone(), len })
            .await
            .map_err(Status::unavailable);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            // Not taken over by the state machine (rejected, or older than what we have).
            let _ = tokio::fs::remove_file(&path).await;
        }
        Ok(Response::new(pbm::SnapshotResponse { vote: Some(pb::vote(&resp?.vote)) }))
    }

    async fn transfer_leader(
        &self,
        req: Request<pbm::TransferLeaderRequest>,
    ) -> Result<Response<pbm::TransferLeaderResponse>, Status> {
        let req = req.into_inner();
        let group = self.group(req.group)?;
        let rpc = pb::from_transfer_request(&req).map_err(bad)?;
        group.handle_transfer_leader(rpc).await.map_err(Status::unavailable)?;
        Ok(Response::new(pbm::TransferLeaderResponse {}))
    }

    async fn group_status(
        &self,
        req: Request<pbm::GroupStatusRequest>,
    ) -> Result<Response<pbm::GroupStatusResponse>, Status> {
        let group = self.group(req.into_inner().group)?;
        Ok(Response::new(group.status().to_pb()))
    }
}
