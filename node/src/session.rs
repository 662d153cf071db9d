//! Client sessions of the RocketMQ 5 protocol: who is connected (by `x-mq-client-id`), with
//! which Settings, and the Telemetry stream to reach each one (transaction check-back).
//!
//! Sessions are per node and in memory, like the RocketMQ proxy's: a client opens a Telemetry
//! stream and heartbeats to every node it talks to, and a node forgets a client that stopped
//! heartbeating.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;
use tokio::sync::mpsc;
use tonic::metadata::MetadataMap;

use crate::error::BrokerError;

/// Header naming the client.
pub const CLIENT_ID_HEADER: &str = "x-mq-client-id";
/// A client that sent nothing for this long is forgotten.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(120);

/// One client as this node knows it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The client's Settings, as merged by this node.
    pub settings: pb::Settings,
    /// When the client last spoke.
    pub last_seen: Instant,
    /// Where to push commands to the client (its Telemetry stream), while it is open.
    pub telemetry: Option<mpsc::Sender<Result<pb::TelemetryCommand, tonic::Status>>>,
}

impl Session {
    /// The consumer group of a consumer's Settings.
    pub fn group(&self) -> Option<&str> {
        match &self.settings.pub_sub {
            Some(pb::settings::PubSub::Subscription(s)) => s.group.as_ref().map(|g| g.name.as_str()),
            _ => None,
        }
    }

    /// The topics a producer declared.
    pub fn producer_topics(&self) -> Vec<&str> {
        match &self.settings.pub_sub {
            Some(pb::settings::PubSub::Publishing(p)) => p.topics.iter().map(|t| t.name.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The client id of a request, or CLIENT_ID_REQUIRED.
pub fn client_id(md: &MetadataMap) -> Result<String, BrokerError> {
    match md.get(CLIENT_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(BrokerError::BadRequest {
            code: Code::ClientIdRequired,
            message: format!(
                "the request has no {CLIENT_ID_HEADER} header: every RocketMQ 5 client sends one"
            ),
        }),
    }
}

/// Every client session of this node.
#[derive(Default)]
pub struct Sessions {
    clients: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Stores the Settings of `client` (a new or repeated Settings command).
    pub fn set_settings(
        &self,
        client: &str,
        settings: pb::Settings,
        telemetry: mpsc::Sender<Result<pb::TelemetryCommand, tonic::Status>>,
    ) {
        let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(
            client.to_string(),
            Session { settings, last_seen: Instant::now(), telemetry: Some(telemetry) },
        );
    }

    /// Records that `client` spoke; false if it never sent Settings.
    pub fn touch(&self, client: &str) -> bool {
        let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match m.get_mut(client) {
            Some(s) => {
                s.last_seen = Instant::now();
                true
            }
            None => false,
        }
    }

    /// The session of `client`.
    pub fn get(&self, client: &str) -> Option<Session> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).get(client).cloned()
    }

    /// Whether `client` has a session that spoke within [`SESSION_TIMEOUT`].
    pub fn alive(&self, client: &str) -> bool {
        let m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        m.get(client).is_some_and(|s| s.last_seen.elapsed() < SESSION_TIMEOUT)
    }

    /// Forgets `client` (it terminated).
    pub fn remove(&self, client: &str) {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).remove(client);
    }

    /// The Telemetry stream of `client` closed.
    pub fn stream_closed(&self, client: &str) {
        if let Some(s) = self.clients.lock().unwrap_or_else(|e| e.into_inner()).get_mut(client) {
            s.telemetry = None;
        }
    }

    /// Sessions matching `f` that have a Telemetry stream open.
    pub fn reachable(&self, f: impl Fn(&Session) -> bool) -> Vec<(String, Session)> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, s)| s.telemetry.is_some() && s.last_seen.elapsed() < SESSION_TIMEOUT && f(s))
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect()
    }

    /// Forgets clients silent for longer than [`SESSION_TIMEOUT`].
    pub fn expire(&self) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.last_seen.elapsed() < SESSION_TIMEOUT);
    }
}
