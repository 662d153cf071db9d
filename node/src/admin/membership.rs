//! The admin service's group-leader operations: `TransferLeader` and `ChangeMembers`. Both run on
//! the group's leader; another node forwards them there (one hop).
//!
//! A node joins a group as a learner and becomes a voter only once it has caught up, so adding a
//! node never makes a quorum wait for a replica still copying the log. A node being removed is
//! first retired in the NameServer: from then on no balancer hands it leadership and its id is
//! never given out again (a returning node with that id and an empty disk could vote twice).

use std::net::SocketAddr;
use std::time::Duration;

use raftmq_proto::admin as pb;
use raftmq_proto::admin::admin_service_client::AdminServiceClient;
use raftmq_raft::Group;
use raftmq_raft::RaftError;
use raftmq_storage::GroupId;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;
use raftmq_storage::nameserver::MetaCommand;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::transport::Channel;

use super::service::AdminServiceImpl;
use crate::balance::caught_up;
use crate::error::BrokerError;
use crate::forward::is_forwarded;
use crate::forward::mark_forwarded;
use crate::grpc::status::ok_status;
use crate::grpc::status::status;

/// How long a learner may take to catch up when the request does not say.
const CATCH_UP_DEFAULT: Duration = Duration::from_secs(60);
/// How long a forwarded request may take beyond its own work.
const FORWARD_SLACK: Duration = Duration::from_secs(15);

/// Where a leader-only request runs.
enum LeaderOf {
    /// This node leads the group.
    Here(Group),
    /// Another node does: its id and a client of its admin service.
    There(NodeId, AdminServiceClient<Channel>),
}

fn answer(res: Result<(), BrokerError>) -> Result<Response<pb::StatusResponse>, Status> {
    Ok(Response::new(pb::StatusResponse { status: Some(res.map_or_else(|e| status(&e), |()| ok_status())) }))
}

fn parse_group(name: &str) -> Result<GroupId, BrokerError> {
    GroupId::parse(name).ok_or_else(|| {
        BrokerError::bad_request(format!("unknown group {name:?}: use nameserver, broker-a, broker-b, ..."))
    })
}

impl AdminServiceImpl {
    /// The group named `name` if this node leads it, else a client of its leader's admin
    /// service (never for a request that was already forwarded: one hop, no loops).
    fn leader_of(&self, name: &str, forwarded: bool) -> Result<LeaderOf, BrokerError> {
        let id = parse_group(name)?;
        let group = self.host.groups().get(id).map_err(|e| BrokerError::bad_request(e.to_string()))?;
        if group.is_leader() {
            return Ok(LeaderOf::Here(group));
        }
        let Some((leader, info)) = group.leader().filter(|(l, _)| *l != self.node_id && !forwarded) else {
            return Err(BrokerError::NotLeader(RaftError::NotLeader { group: id, leader: group.leader() }));
        };
        let channel = self.channels.get(&info.client_addr).map_err(BrokerError::Unavailable)?;
        Ok(LeaderOf::There(leader, AdminServiceClient::new(channel)))
    }

    /// Sends `req` once to the group's leader, marked forwarded, with `deadline` for its answer;
    /// a leader that does not answer becomes an UNAVAILABLE status naming it.
    async fn forward<T, F, Fut>(
        &self,
        leader: NodeId,
        client: AdminServiceClient<Channel>,
        req: T,
        deadline: Duration,
        call: F,
    ) -> Result<Response<pb::StatusResponse>, Status>
    where
        F: FnOnce(AdminServiceClient<Channel>, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<pb::StatusResponse>, Status>>,
    {
        let mut fwd = Request::new(req);
        fwd.set_timeout(deadline);
        mark_forwarded(&mut fwd, self.node_id);
        match call(client, fwd).await {
            Ok(resp) => Ok(resp),
            Err(s) => answer(Err(unanswered(leader, &s))),
        }
    }

    pub(super) async fn transfer_leader_local(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let forwarded = is_forwarded(req.metadata());
        let r = req.into_inner();
        let group = match self.leader_of(&r.group, forwarded) {
            Ok(LeaderOf::Here(g)) => g,
            Ok(LeaderOf::There(leader, client)) => {
                return self
                    .forward(leader, client, r, FORWARD_SLACK, |mut c, q| async move {
                        c.transfer_leader(q).await
                    })
                    .await;
            }
            Err(e) => return answer(Err(e)),
        };
        answer(self.transfer_here(&group, r.to).await)
    }

    async fn transfer_here(&self, group: &Group, to: NodeId) -> Result<(), BrokerError> {
        let id = group.id();
        let st = group.status();
        if !st.voters.contains(&to) {
            return Err(BrokerError::bad_request(format!(
                "node {to} is not a voter of {id} (voters: {:?})",
                st.voters
            )));
        }
        if self.ns.retired().contains(&to) {
            return Err(BrokerError::bad_request(format!(
                "node {to} is being removed from the cluster; it takes no leadership"
            )));
        }
        if st.leader == Some(to) {
            return Ok(());
        }
        if !caught_up(&st, to) {
            let behind = st.lag(to).map_or_else(|| "an unknown number of".to_string(), |l| l.to_string());
            return Err(BrokerError::bad_request(format!(
                "node {to} is {behind} entries behind on {id}; retry once it caught up"
            )));
        }
        tracing::info!(group = %id, to, "transferring leadership");
        group.transfer_leader(to).await?;
        group.wait_for(Duration::from_secs(10), "the new leader", |s| s.leader == Some(to)).await?;
        Ok(())
    }

    pub(super) async fn change_members_local(
        &self,
        req: Request<pb::ChangeMembersRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let forwarded = is_forwarded(req.metadata());
        let r = req.into_inner();
        let catch_up = match r.catch_up_ms {
            0 => CATCH_UP_DEFAULT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let group = match self.leader_of(&r.group, forwarded) {
            Ok(LeaderOf::Here(g)) => g,
            Ok(LeaderOf::There(leader, client)) => {
                let deadline = catch_up + FORWARD_SLACK;
                return self
                    .forward(leader, client, r, deadline, |mut c, q| async move { c.change_members(q).await })
                    .await;
            }
            Err(e) => return answer(Err(e)),
        };
        let change = pb::MembershipChange::try_from(r.change);
        let res = match change {
            Ok(pb::MembershipChange::AddVoter) => self.add_voter(&group, &r, catch_up).await,
            Ok(pb::MembershipChange::Remove) => self.remove(&group, r.node_id).await,
            Ok(pb::MembershipChange::Retire) => self.retire(&group, r.node_id).await,
            _ => Err(BrokerError::bad_request("change must be ADD_VOTER, REMOVE or RETIRE")),
        };
        if let Err(e) = &res {
            let change = change.map_or("unknown", |c| c.as_str_name());
            tracing::warn!(group = %group.id(), node = r.node_id, change, error = %e, "membership change refused");
        }
        answer(res)
    }

    /// Adds `r.node_id` as a learner, waits until it caught up, then makes it a voter.
    async fn add_voter(
        &self,
        group: &Group,
        r: &pb::ChangeMembersRequest,
        catch_up: Duration,
    ) -> Result<(), BrokerError> {
        let (id, node) = (group.id(), r.node_id);
        if node == 0 {
            return Err(BrokerError::bad_request("node_id must be 1 or more"));
        }
        if self.ns.retired().contains(&node) {
            return Err(BrokerError::bad_request(format!(
                "node id {node} belonged to a removed node and is never reused; start the new node with a new node_id"
            )));
        }
        for (what, addr) in [("raft_addr", &r.raft_addr), ("client_addr", &r.client_addr)] {
            addr.parse::<SocketAddr>().map_err(|e| {
                BrokerError::bad_request(format!("{what} {addr:?} is not host:port with an IP address: {e}"))
            })?;
        }
        let info = NodeInfo::new(r.raft_addr.clone(), r.client_addr.clone());
        let st = group.status();
        if let Some((_, known)) = group.members().into_iter().find(|(n, _)| *n == node)
            && known != info
        {
            return Err(BrokerError::bad_request(format!(
                "node {node} is already in {id} at raft {} / client {}; remove it first to change its addresses",
                known.raft_addr, known.client_addr
            )));
        }
        if st.voters.contains(&node) {
            return Ok(());
        }
        if !st.learners.contains(&node) {
            group.add_learner(node, info).await?;
        }
        let caught_up = group.wait_for(catch_up, "the new node to catch up", |s| caught_up(s, node)).await;
        if caught_up.is_err() {
            let behind = group
                .status()
                .lag(node)
                .map_or("nothing replicated yet".to_string(), |l| format!("{l} entries behind"));
            return Err(BrokerError::Unavailable(format!(
                "node {node} has not caught up on {id} within {catch_up:?} ({behind}); it stays a learner. \
                 Check that it runs and is reachable at {}, then run the command again",
                r.raft_addr
            )));
        }
        group.promote(node).await?;
        Ok(())
    }

    /// Removes `node` from `group`; never this leader itself (move the leadership first).
    async fn remove(&self, group: &Group, node: NodeId) -> Result<(), BrokerError> {
        let id = group.id();
        if node == self.node_id {
            return Err(BrokerError::bad_request(format!(
                "node {node} leads {id}: move its leadership first (raftmq admin leader transfer)"
            )));
        }
        let st = group.status();
        let member = st.voters.contains(&node) || st.learners.contains(&node);
        if st.voters.contains(&node) && st.voters.len() <= 1 {
            return Err(BrokerError::bad_request(format!("node {node} is the last voter of {id}")));
        }
        if member {
            group.remove_member(node).await?;
        }
        if id == GroupId::NAMESERVER {
            self.retire(group, node).await?;
        }
        Ok(())
    }

    /// Retires `node` in the NameServer (its id is never reused, it leads nothing more).
    async fn retire(&self, group: &Group, node: NodeId) -> Result<(), BrokerError> {
        if group.id() != GroupId::NAMESERVER {
            return Err(BrokerError::bad_request("RETIRE applies to the nameserver group only"));
        }
        if node == 0 {
            return Err(BrokerError::bad_request("node_id must be 1 or more"));
        }
        self.ns.propose(MetaCommand::RetireMember { id: node }).await?;
        Ok(())
    }
}

/// The error for a forwarded request whose leader did not answer.
fn unanswered(leader: NodeId, s: &Status) -> BrokerError {
    BrokerError::Unavailable(format!("leader node {leader} did not answer: {}", s.message()))
}
