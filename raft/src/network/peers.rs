//! One pooled gRPC channel per peer node, shared by every group.
//!
//! HTTP/2 multiplexes the groups' RPCs over the one connection. Keepalive pings (1 s, 2 s timeout)
//! notice a dead or partitioned peer and let the channel reconnect once it is reachable again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::Duration;

use raftmq_proto::raft::raft_service_client::RaftServiceClient;
use raftmq_storage::NodeId;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

/// Largest internal message accepted or sent (a snapshot chunk, or entries up to the append cap
/// plus one oversized entry).
pub const INTERNAL_MESSAGE_BYTES_MAX: usize = 64 << 20;

/// The local address a connection to `addr` leaves from: `source`, unless `addr` is an IP
/// address that is not loopback (a loopback source cannot reach it). Peer and forwarding
/// channels both follow this rule.
pub fn source_toward(addr: &str, source: Option<IpAddr>) -> Option<IpAddr> {
    let remote = addr.parse::<std::net::SocketAddr>().is_ok_and(|a| !a.ip().is_loopback());
    source.filter(|_| !remote)
}

/// Builds a lazily-connecting channel to `addr` (`host:port`) with raftmq's transport settings.
/// With `source`, connections leave from that local address (see [`PeerPool::with_source`] and
/// [`source_toward`]).
pub fn channel(addr: &str, source: Option<IpAddr>) -> Result<Channel, String> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad peer address {addr:?}: {e}"))?
        .local_address(source_toward(addr, source))
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true)
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(32 << 20));
    Ok(ep.connect_lazy())
}

#[derive(Clone)]
struct Peer {
    addr: String,
    channel: Channel,
}

/// The channels to the other nodes, by node id.
#[derive(Default)]
pub struct PeerPool {
    peers: RwLock<HashMap<NodeId, Peer>>,
    source: Option<IpAddr>,
}

impl PeerPool {
    /// A pool whose connections leave from `source`: a node listening on its own address (such
    /// as 127.0.0.12) also sends from it, so a firewall rule on that address cuts the node off
    /// in both directions (the chaos scripts' partitions rely on this).
    pub fn with_source(source: Option<IpAddr>) -> Self {
        Self { peers: RwLock::default(), source }
    }

    /// Records (or updates) where node `id` listens for Raft traffic.
    pub fn set_addr(&self, id: NodeId, addr: &str) {
        if self.peers.read().unwrap_or_else(|e| e.into_inner()).get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        match channel(addr, self.source) {
            Ok(channel) => {
                tracing::info!(node = id, %addr, "peer address");
                self.peers
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, Peer { addr: addr.to_string(), channel });
            }
            Err(e) => tracing::error!(node = id, error = %e, "cannot use peer address"),
        }
    }

    /// A client for node `id`, over the shared channel.
    pub fn client(&self, id: NodeId) -> Option<RaftServiceClient<Channel>> {
        let peer = self.peers.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()?;
        Some(
            RaftServiceClient::new(peer.channel)
                .max_decoding_message_size(INTERNAL_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(INTERNAL_MESSAGE_BYTES_MAX),
        )
    }
}
