//! Client sessions of the RocketMQ 5 protocol: which clients (by `x-mq-client-id`) sent their
//! Settings and spoke lately.
//!
//! Sessions are per node and in memory, like the RocketMQ proxy's: a client opens a Telemetry
//! stream and heartbeats to every node it talks to, and a node forgets a client that stopped
//! heartbeating. (Silent clients' entries stay until they terminate or the node restarts.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use crate::error::Reason;
use tonic::metadata::MetadataMap;

use crate::error::BrokerError;

/// Header naming the client.
pub const CLIENT_ID_HEADER: &str = "x-mq-client-id";
/// A client that sent nothing for this long is forgotten.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(120);

/// The client id of a request, or CLIENT_ID_REQUIRED.
pub fn client_id(md: &MetadataMap) -> Result<String, BrokerError> {
    match md.get(CLIENT_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(BrokerError::BadRequest {
            code: Reason::ClientIdRequired,
            message: format!(
                "the request has no {CLIENT_ID_HEADER} header: every RocketMQ 5 client sends one"
            ),
        }),
    }
}

/// The sending half of a client's Telemetry stream: how the broker sends it commands.
pub type CommandSender =
    tokio::sync::mpsc::Sender<Result<raftmq_proto::rocketmq::TelemetryCommand, tonic::Status>>;

/// Every client session of this node.
#[derive(Default)]
pub struct Sessions {
    /// When each client last spoke.
    clients: Mutex<HashMap<String, Instant>>,
    /// Producers with an open Telemetry stream: the topics they publish, and the stream.
    producers: Mutex<HashMap<String, (Vec<String>, CommandSender)>>,
}

impl Sessions {
    /// Registers `client` (it sent Settings); later heartbeats keep it alive.
    pub fn register(&self, client: &str) {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).insert(client.to_string(), Instant::now());
    }

    /// Records that `client` spoke; false if it never sent Settings.
    pub fn touch(&self, client: &str) -> bool {
        let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(client) {
            Some(seen) => {
                *seen = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Whether `client` has a session that spoke within [`SESSION_TIMEOUT`].
    pub fn alive(&self, client: &str) -> bool {
        let m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        m.get(client).is_some_and(|seen| seen.elapsed() < SESSION_TIMEOUT)
    }

    /// Forgets `client` (it terminated).
    pub fn remove(&self, client: &str) {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).remove(client);
        self.producers.lock().unwrap_or_else(|e| e.into_inner()).remove(client);
    }

    /// Records that producer `client` publishes `topics` and listens on `tx` (its Telemetry
    /// stream), so it can be asked about its transactions.
    pub fn register_producer(&self, client: &str, topics: Vec<String>, tx: CommandSender) {
        self.producers.lock().unwrap_or_else(|e| e.into_inner()).insert(client.to_string(), (topics, tx));
    }

    /// A live producer of `topic` with an open stream, if any (streams that closed are dropped).
    pub fn producer_for(&self, topic: &str) -> Option<(String, CommandSender)> {
        let mut m = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (_, tx)| !tx.is_closed());
        let found = m.iter().find(|(c, (topics, _))| topics.iter().any(|t| t == topic) && self.alive(c));
        found.map(|(c, (_, tx))| (c.clone(), tx.clone()))
    }
}
