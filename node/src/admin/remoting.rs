//! `AnnounceRemoting`: a node's Remoting address into the NameServer's member records, where
//! every node finds it when it answers a 4.x client's route query.

use raftmq_proto::admin as pb;
use raftmq_storage::nameserver::MetaCommand;

use super::service::AdminServiceImpl;
use crate::error::BrokerError;

impl AdminServiceImpl {
    /// On the NameServer leader: records `r.addr` as node `r.node_id`'s Remoting address.
    pub(super) async fn announce_remoting_local(
        &self,
        r: pb::AnnounceRemotingRequest,
    ) -> Result<pb::StatusResponse, BrokerError> {
        if r.addr.len() > 255 || (!r.addr.is_empty() && !r.addr.contains(':')) {
            return Err(BrokerError::bad_request(format!("remoting address {:?} is not host:port", r.addr)));
        }
        let addr = (!r.addr.is_empty()).then_some(r.addr);
        self.ns.propose(MetaCommand::SetRemotingAddr { id: r.node_id, addr }).await?;
        Ok(pb::StatusResponse { status: Some(crate::grpc::status::ok_status()) })
    }
}

impl AdminServiceImpl {
    /// The 4.x clients connected to this node.
    pub(super) fn list_clients_local(&self) -> pb::ListClientsResponse {
        let clients = self
            .remoting
            .as_ref()
            .map(|r| r.clients.list())
            .unwrap_or_default()
            .into_iter()
            .map(|c| pb::ClientInfo {
                client_id: c.client_id,
                addr: c.addr,
                protocol: "remoting".into(),
                language: c.language,
                producer_groups: c.producers,
                consumer_groups: c.consumers.into_iter().map(|(g, m)| format!("{g}:{m}")).collect(),
            })
            .collect();
        pb::ListClientsResponse {
            status: Some(crate::grpc::status::ok_status()),
            node_id: self.node_id,
            clients,
        }
    }
}
