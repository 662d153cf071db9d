//! Forwarding a 4.x request to the leader of its broker group, over the leader's own Remoting
//! port: a client whose route is stale (the leader moved) keeps working. One hop: a forwarded
//! request carries a marker and is never forwarded again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::SinkExt;
use futures::StreamExt;
use raftmq_storage::GroupId;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::clients::next_opaque;
use super::codec::Command;
use super::codec::RemotingCodec;
use super::context::Remoting;
use super::status;
use crate::error::BrokerError;

/// The header field marking a forwarded request (its value: the forwarding node's id).
pub const FORWARDED: &str = "raftmqForwardedBy";
/// The header field carrying the original client's address on a forwarded request.
pub const CLIENT: &str = "raftmqClient";
/// How long a connection to another node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request may wait for a new leader after a failover.
const LEADER_WAIT: Duration = Duration::from_secs(3);

type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<Command>>>>;

/// One connection to another node's Remoting port.
struct PeerConn {
    tx: mpsc::Sender<Command>,
    pending: Pending,
}

/// Connections to the other nodes, by address, opened on first use.
#[derive(Default)]
pub struct Peers {
    conns: Mutex<HashMap<String, Arc<PeerConn>>>,
}

impl Peers {
    async fn conn(&self, addr: &str) -> Result<Arc<PeerConn>, BrokerError> {
        if let Some(c) =
            self.conns.lock().unwrap_or_else(|e| e.into_inner()).get(addr).filter(|c| !c.tx.is_closed())
        {
            return Ok(c.clone());
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| BrokerError::Unavailable(format!("connecting to {addr} timed out")))?
            .map_err(|e| BrokerError::Unavailable(format!("cannot connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (mut sink, mut frames) = Framed::new(stream, RemotingCodec).split();
        let (tx, mut rx) = mpsc::channel::<Command>(1024);
        let pending: Pending = Arc::default();
        let answers = pending.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(c) => if sink.send(c).await.is_err() { break },
                        None => break,
                    },
                    inc = frames.next() => match inc {
                        Some(Ok(c)) if c.is_response() => {
                            let waiter = answers.lock().unwrap_or_else(|e| e.into_inner()).remove(&c.opaque);
                            if let Some(w) = waiter {
                                let _ = w.send(c);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
            // Waiters see their sender dropped.
            answers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        let c = Arc::new(PeerConn { tx, pending });
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Sends `req` to `addr` and waits up to `timeout` for its answer (none for a oneway
    /// request). The answer carries `req`'s opaque.
    pub async fn call(
        &self,
        addr: &str,
        mut req: Command,
        timeout: Duration,
    ) -> Result<Option<Command>, BrokerError> {
        let conn = self.conn(addr).await?;
        let opaque = req.opaque;
        req.opaque = next_opaque();
        let lost = || BrokerError::Unavailable(format!("the connection to {addr} closed before it answered"));
        if req.is_oneway() {
            conn.tx.send(req).await.map_err(|_| lost())?;
            return Ok(None);
        }
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(req.opaque, tx);
        let sent_opaque = req.opaque;
        if conn.tx.send(req).await.is_err() {
            return Err(lost());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(mut answer)) => {
                answer.opaque = opaque;
                Ok(Some(answer))
            }
            Ok(Err(_)) => Err(lost()),
            Err(_) => {
                conn.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&sent_opaque);
                Err(BrokerError::Unavailable(format!(
                    "{addr} did not answer within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }
}

impl Remoting {
    /// Whether `req` was forwarded here by another node.
    pub fn is_forwarded(req: &Command) -> bool {
        req.ext.contains_key(FORWARDED)
    }

    /// The address of the client that sent `req`: `peer`, or the original client's when another
    /// node forwarded it.
    pub fn client_addr(req: &Command, peer: SocketAddr) -> String {
        req.ext.get(CLIENT).cloned().unwrap_or_else(|| peer.to_string())
    }

    /// Answers `req` from `peer`, which broker group `g` must serve and this node does not lead,
    /// by forwarding it to the leader (after waiting up to a few seconds for one to be elected).
    /// `timeout`: how long the leader may take to answer.
    pub async fn forward(&self, g: GroupId, peer: SocketAddr, req: Command, timeout: Duration) -> Command {
        let forwarded = Self::is_forwarded(&req);
        let mut target = self.forward_target(g, forwarded);
        if target.is_err() && !forwarded && self.await_leader(g, None, Instant::now() + LEADER_WAIT).await {
            if self.local_leader(g).is_some() {
                return Box::pin(self.serve_broker(peer, req)).await;
            }
            target = self.forward_target(g, false);
        }
        let addr = target.and_then(|l| {
            self.ns.read_local(|s| s.members.get(&l.node).and_then(|m| m.remoting_addr.clone())).ok_or_else(
                || BrokerError::Unavailable(format!("{g}: node {} has no remoting address yet", l.node)),
            )
        });
        let addr = match addr {
            Ok(a) => a,
            Err(e) => return status::error(&req, &e),
        };
        let client = Self::client_addr(&req, peer);
        let stub = req.response(0, None);
        let fwd = req.with(FORWARDED, self.node_id).with(CLIENT, client);
        match self.peers.call(&addr, fwd, timeout).await {
            Ok(Some(answer)) => answer,
            // A oneway request: nothing is sent back anyway.
            Ok(None) => stub,
            Err(e) => {
                tracing::debug!(group = %g, addr = %addr, error = %e, "remoting forward failed");
                status::error(&stub, &e)
            }
        }
    }
}
