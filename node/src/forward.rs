//! Forwarding a client request to the node that can serve it (at most one hop).
//!
//! A request a node cannot serve (it is not the leader of the group concerned) goes on to the
//! leader's client endpoint, marked with [`FORWARDED_HEADER`]. A marked request is never forwarded
//! again: if it lands on a non-leader (leadership moved meanwhile), it is answered with the leader
//! hint instead, so a loop is impossible.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

/// Metadata key marking a request that was already forwarded once.
pub const FORWARDED_HEADER: &str = "x-raftmq-forwarded";

/// Whether `md` marks a forwarded request.
pub fn is_forwarded(md: &MetadataMap) -> bool {
    md.contains_key(FORWARDED_HEADER)
}

/// Marks `req` as forwarded by node `from`.
pub fn mark_forwarded<T>(req: &mut tonic::Request<T>, from: u64) {
    if let Ok(v) = from.to_string().parse() {
        req.metadata_mut().insert(FORWARDED_HEADER, v);
    }
}

/// A request carrying `msg` on to another node: the client's RocketMQ headers (`x-mq-*`, so the
/// next node knows the client) and trace context go along, marked forwarded by `from`. Every
/// request one node sends another's client port is built here.
pub fn forwarded<T>(msg: T, original: &MetadataMap, from: u64, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    for kv in original.iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(k, v) = kv
            && (k.as_str().starts_with("x-mq-") || k.as_str() == "traceparent" || k.as_str() == "tracestate")
        {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
    }
    // A node's own requests (renewals of invisible time) have no client: they speak as the node.
    if req.metadata().get(crate::session::CLIENT_ID_HEADER).is_none()
        && let Ok(v) = format!("raftmq-node-{from}").parse()
    {
        req.metadata_mut().insert(crate::session::CLIENT_ID_HEADER, v);
    }
    req.set_timeout(timeout);
    mark_forwarded(&mut req, from);
    req
}

/// Channels to other nodes' client endpoints, by address, shared by every forwarded request.
#[derive(Default)]
pub struct ClientChannels {
    channels: RwLock<HashMap<String, Channel>>,
    source: Option<IpAddr>,
}

impl ClientChannels {
    /// Channels whose connections leave from `source` (this node's own address), so that a
    /// partition of the node cuts its forwarded requests too.
    pub fn with_source(source: Option<IpAddr>) -> Self {
        Self { channels: RwLock::default(), source }
    }

    /// The channel to `addr` (`host:port`), created on first use.
    pub fn get(&self, addr: &str) -> Result<Channel, String> {
        if let Some(c) = self.channels.read().unwrap_or_else(|e| e.into_inner()).get(addr) {
            return Ok(c.clone());
        }
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad node address {addr:?}: {e}"))?
            .local_address(raftmq_raft::network::peers::source_toward(addr, self.source))
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        let c = ep.connect_lazy();
        self.channels.write().unwrap_or_else(|e| e.into_inner()).insert(addr.to_string(), c.clone());
        Ok(c)
    }
}
