//! [`Remoting`]: what the Remoting front end holds (the broker core, this node's advertised
//! address, the registry of 4.x clients, connections to the other nodes' Remoting ports) and the
//! dispatch of a request by its code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::net::SocketAddrV4;
use std::sync::Arc;

use super::clients::Clients;
use super::codec::Command;
use super::codes::request as code;
use super::codes::response as rc;
use super::forward::Peers;
use super::listener::Conn;
use crate::broker::service::BrokerService;
use crate::metrics::requests::RequestCounts;

/// The Remoting front end of one node.
pub struct Remoting {
    /// The broker core.
    pub broker: Arc<BrokerService>,
    /// This node's Remoting address as clients reach it.
    pub advertise: String,
    /// The same as an IPv4 socket address: the store host in message ids and stored messages.
    pub store_host: SocketAddrV4,
    /// The 4.x clients connected here, from their heartbeats.
    pub clients: Clients,
    /// Connections to other nodes' Remoting ports (forwarding).
    pub peers: Peers,
    /// Requests served, by code.
    requests: RequestCounts<i32>,
}

impl std::ops::Deref for Remoting {
    type Target = BrokerService;

    fn deref(&self) -> &BrokerService {
        &self.broker
    }
}

/// The IPv4 socket address of `addr` (this node's advertised Remoting address): parsed when the
/// host is a literal address, otherwise resolved — with tokio's resolver, which runs the blocking
/// lookup on the blocking pool, not on a worker. `0.0.0.0` with the port when it resolves to no
/// IPv4 address.
pub async fn store_host(addr: &str) -> SocketAddrV4 {
    let parsed = super::message::socket_v4(addr);
    if !parsed.ip().is_unspecified() {
        return parsed;
    }
    match tokio::net::lookup_host(addr).await {
        Ok(mut found) => found
            .find_map(|a| match a {
                SocketAddr::V4(v4) => Some(v4),
                SocketAddr::V6(_) => None,
            })
            .unwrap_or(parsed),
        Err(e) => {
            tracing::warn!(addr, error = %e, "cannot resolve the advertised remoting address; message ids will carry 0.0.0.0");
            parsed
        }
    }
}

impl Remoting {
    /// The front end of `broker`, reachable by 4.x clients at `advertise` ([`store_host`] of it
    /// in `store_host`).
    pub fn new(broker: Arc<BrokerService>, advertise: String, store_host: SocketAddrV4) -> Arc<Self> {
        Arc::new(Self {
            broker,
            store_host,
            advertise,
            clients: Clients::default(),
            peers: Peers::default(),
            requests: RequestCounts::default(),
        })
    }

    /// Requests served so far, by request code, and those of codes beyond the counter's cap.
    pub fn request_counts(&self) -> (BTreeMap<i32, u64>, u64) {
        self.requests.snapshot()
    }

    /// Serves one request; `None` when it has no answer (a oneway request's).
    pub async fn handle(self: &Arc<Self>, conn: &Arc<Conn>, req: Command) -> Option<Command> {
        self.requests.count(&req.code);
        let resp = match req.code {
            code::GET_ROUTEINFO_BY_TOPIC => self.route(&req).await,
            code::GET_BROKER_CLUSTER_INFO => self.cluster_info(&req),
            code::HEART_BEAT => self.heartbeat(conn, &req).await,
            code::UNREGISTER_CLIENT => self.unregister(conn, &req),
            code::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(&req),
            code::CHECK_CLIENT_CONFIG => self.check_client_config(&req),
            code::VIEW_MESSAGE_BY_ID => self.view_message(&req).await,
            code::QUERY_MESSAGE => self.query_message(&req).await,
            _ => self.serve_broker(conn.peer, req).await,
        };
        Some(resp)
    }

    /// Serves a request one broker group answers (on its leader, forwarded there if need be).
    pub async fn serve_broker(&self, peer: SocketAddr, req: Command) -> Command {
        match req.code {
            code::SEND_MESSAGE | code::SEND_MESSAGE_V2 | code::SEND_BATCH_MESSAGE => {
                self.send(peer, req).await
            }
            code::PULL_MESSAGE | code::LITE_PULL_MESSAGE => self.pull(peer, req).await,
            code::QUERY_CONSUMER_OFFSET
            | code::UPDATE_CONSUMER_OFFSET
            | code::GET_MAX_OFFSET
            | code::GET_MIN_OFFSET
            | code::SEARCH_OFFSET_BY_TIMESTAMP
            | code::GET_EARLIEST_MSG_STORETIME => self.offsets(peer, req).await,
            code::CONSUMER_SEND_MSG_BACK => self.send_back(peer, req).await,
            code::END_TRANSACTION => self.end_transaction(peer, req).await,
            code::LOCK_BATCH_MQ | code::UNLOCK_BATCH_MQ => self.lock(peer, req).await,
            other => req.response(
                rc::REQUEST_CODE_NOT_SUPPORTED,
                Some(format!("request code {other} is not supported by raftmq")),
            ),
        }
    }
}
