//! Client sessions: `Telemetry` (Settings in, merged Settings out, on the same stream),
//! `Heartbeat` and `NotifyClientTermination`.
//!
//! The merged Settings are what the official clients configure themselves from: a producer's
//! retry policy and body limit, a consumer's batch size, long-polling time, orderliness and the
//! retry schedule (the push consumer waits `customized_backoff[attempt - 1]` before a failed
//! message comes back).

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use raftmq_proto::prost_types;
use raftmq_proto::rocketmq as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::Status;
use tonic::Streaming;

use super::context::Context;
use super::groups::group_name;
use super::receive::filter_of;
use super::status::ok_status;
use super::status::status;
use crate::broker::send::BODY_BYTES_MAX;
use crate::error::BrokerError;
use crate::session::client_id;
use raftmq_proto::rocketmq::Code;

/// The stream a `Telemetry` call answers with.
pub type TelemetryStream = Pin<Box<dyn Stream<Item = Result<pb::TelemetryCommand, Status>> + Send>>;

/// Messages per receive the consumers are told to ask for.
const RECEIVE_BATCH: i32 = 32;
/// Attempts per send the producers are told to make (RocketMQ's default is 3).
const PRODUCER_ATTEMPTS: i32 = 5;
/// Long-polling time the consumers are told to use.
const LONG_POLLING: Duration = Duration::from_secs(20);

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

impl Context {
    /// The client's Settings completed with this server's: what the client should use.
    pub fn merge_settings(&self, mut s: pb::Settings) -> Result<pb::Settings, BrokerError> {
        match s.pub_sub.as_mut() {
            Some(pb::settings::PubSub::Publishing(p)) => {
                // Five attempts: a client whose first access point was just killed may spend two
                // of them on the dead connection before its channel moves on.
                s.backoff_policy = Some(pb::RetryPolicy {
                    max_attempts: PRODUCER_ATTEMPTS,
                    strategy: Some(pb::retry_policy::Strategy::ExponentialBackoff(pb::ExponentialBackoff {
                        initial: Some(duration(Duration::from_millis(10))),
                        max: Some(duration(Duration::from_secs(1))),
                        multiplier: 2.0,
                    })),
                });
                p.max_body_size = BODY_BYTES_MAX as i32;
                p.validate_message_type = true;
            }
            Some(pb::settings::PubSub::Subscription(sub)) => {
                let name = group_name(sub.group.as_ref())?;
                // A bad filter is refused at subscribe, not at the first receive.
                for entry in &sub.subscriptions {
                    filter_of(entry.expression.as_ref())?;
                }
                let group = self.ns.read_local(|st| st.groups.get(&name).cloned());
                sub.receive_batch_size = Some(RECEIVE_BATCH);
                sub.long_polling_timeout = Some(duration(LONG_POLLING));
                sub.fifo = Some(group.as_ref().is_some_and(|g| g.fifo));
                let attempts =
                    group.as_ref().map_or(raftmq_storage::nameserver::DEFAULT_MAX_DELIVERY_ATTEMPTS, |g| {
                        g.max_delivery_attempts
                    });
                s.backoff_policy = Some(pb::RetryPolicy {
                    max_attempts: attempts as i32,
                    strategy: Some(pb::retry_policy::Strategy::CustomizedBackoff(pb::CustomizedBackoff {
                        next: self
                            .options
                            .retry_delays_ms
                            .iter()
                            .map(|ms| duration(Duration::from_millis(*ms)))
                            .collect(),
                    })),
                });
            }
            None => {
                return Err(BrokerError::bad_request(
                    "settings have neither publishing nor subscription: say whether this client produces or consumes",
                ));
            }
        }
        s.metric = Some(pb::Metric { on: false, endpoints: None });
        Ok(s)
    }

    /// `Telemetry`: every Settings the client sends is stored under its id and answered on the
    /// same stream with status OK and the merged Settings.
    pub async fn telemetry(
        self: std::sync::Arc<Self>,
        req: Request<Streaming<pb::TelemetryCommand>>,
    ) -> Result<TelemetryStream, Status> {
        let client = client_id(req.metadata()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let sessions = self.sessions.clone();
        let reply_tx = tx.clone();
        let ctx = std::sync::Arc::downgrade(&self);
        tokio::spawn(async move {
            while let Some(cmd) = inbound.next().await {
                let cmd = match cmd {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(client = %client, error = %e, "telemetry stream failed");
                        break;
                    }
                };
                match cmd.command {
                    Some(pb::telemetry_command::Command::Settings(s)) => {
                        let Some(ctx) = ctx.upgrade() else { break };
                        // A consumer of a new group creates it (when auto-creation is on), as its
                        // first receive would; then the merged Settings carry the group's values.
                        if let Some(pb::settings::PubSub::Subscription(sub)) = &s.pub_sub
                            && let Ok(name) = group_name(sub.group.as_ref())
                            && let Err(e) = ctx.consumer_group(&name).await
                        {
                            tracing::warn!(client = %client, group = %name, error = %e, "consumer group not available");
                        }
                        let publishes: Option<Vec<String>> = match &s.pub_sub {
                            Some(pb::settings::PubSub::Publishing(p)) => {
                                Some(p.topics.iter().map(|t| t.name.clone()).collect())
                            }
                            _ => None,
                        };
                        match ctx.merge_settings(s) {
                            Ok(merged) => {
                                sessions.register(&client);
                                if let Some(topics) = publishes {
                                    sessions.register_producer(&client, topics, reply_tx.clone());
                                }
                                let reply = pb::TelemetryCommand {
                                    status: Some(ok_status()),
                                    command: Some(pb::telemetry_command::Command::Settings(merged)),
                                };
                                if reply_tx.send(Ok(reply)).await.is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                // The RocketMQ code (e.g. ILLEGAL_FILTER_EXPRESSION) travels in
                                // the command's status; the client may correct and resend.
                                tracing::info!(client = %client, error = %e, "settings refused");
                                let reply = pb::TelemetryCommand { status: Some(status(&e)), command: None };
                                if reply_tx.send(Ok(reply)).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Some(other) => {
                        tracing::debug!(client = %client, command = ?std::mem::discriminant(&other), "telemetry command ignored");
                        sessions.touch(&client);
                    }
                    None => {
                        sessions.touch(&client);
                    }
                }
            }
        });
        drop(tx);
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    /// `Heartbeat`: the client is alive; UNRECOGNIZED_CLIENT_TYPE if it never sent Settings.
    pub fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> pb::HeartbeatResponse {
        let status = match client_id(req.metadata()) {
            Err(e) => status(&e),
            Ok(client) if self.sessions.touch(&client) => ok_status(),
            Ok(client) => pb::Status {
                code: Code::UnrecognizedClientType as i32,
                message: format!(
                    "client {client:?} sent no Settings to this node: open a Telemetry stream and send Settings first"
                ),
            },
        };
        pb::HeartbeatResponse { status: Some(status) }
    }

    /// `NotifyClientTermination`: forgets the client.
    pub fn notify_termination(
        &self,
        req: Request<pb::NotifyClientTerminationRequest>,
    ) -> pb::NotifyClientTerminationResponse {
        let status = match client_id(req.metadata()) {
            Err(e) => status(&e),
            Ok(client) => {
                self.sessions.remove(&client);
                ok_status()
            }
        };
        pb::NotifyClientTerminationResponse { status: Some(status) }
    }
}
