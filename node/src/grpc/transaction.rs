//! Transactions over the RocketMQ 5 protocol: `EndTransaction` (commit or roll back a half
//! message), and the check-back loop: a half message whose transaction is still open after the
//! check interval is sent to a live producer of its topic as a `RecoverOrphanedTransactionCommand`
//! on that producer's Telemetry stream (the producer's checker answers with `EndTransaction`);
//! after the last allowed check it is rolled back. Check counts live in the broker group's log.

use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::rocketmq as pb;
use raftmq_storage::GroupId;
use raftmq_storage::broker::record::RecordView;
use tokio::sync::watch;
use tonic::Request;

use super::context::Context;
use super::context::leader_ok;
use super::convert;
use super::receive::topic_name;
use super::status::outcome_status;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::session::client_id;

/// Half messages checked per broker group per round.
const CHECKS_PER_ROUND: usize = 256;

/// Transaction settings (from the `[broker]` config section).
#[derive(Debug, Clone, Copy)]
pub struct TxnOptions {
    /// How long a transaction may stay open before (and between) check-backs.
    pub check_interval: Duration,
    /// Check-backs before an open transaction is rolled back.
    pub checks_max: u32,
}

/// The transaction id of a half message, or the recall handle of a delayed one: its broker group
/// and message id, so the request goes straight to the group that holds it.
pub fn locator(group: GroupId, message_id: &str) -> String {
    format!("{}:{message_id}", group.name())
}

/// Parses a [`locator`]; `code` for one this cluster did not issue.
pub fn parse_locator(id: &str, code: Reason) -> Result<(GroupId, String), BrokerError> {
    let invalid = || BrokerError::BadRequest {
        code,
        message: format!(
            "{id:?} is not a transaction id or recall handle this cluster issued; use the one the send returned"
        ),
    };
    let (group, message_id) = id.split_once(':').ok_or_else(invalid)?;
    let group = GroupId::parse(group).filter(|g| g.is_broker()).ok_or_else(invalid)?;
    if message_id.is_empty() {
        return Err(invalid());
    }
    Ok((group, message_id.to_string()))
}

impl Context {
    /// `EndTransaction`: commits or rolls back a half message, here or on its group's leader.
    pub async fn end_transaction(
        &self,
        req: Request<pb::EndTransactionRequest>,
    ) -> pb::EndTransactionResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let res = async {
            client_id(&md)?;
            let topic = self.topic(&topic_name(r.topic.as_ref())).await?;
            let commit = match pb::TransactionResolution::try_from(r.resolution) {
                Ok(pb::TransactionResolution::Commit) => true,
                Ok(pb::TransactionResolution::Rollback) => false,
                _ => return Err(BrokerError::bad_request("resolution must be COMMIT or ROLLBACK")),
            };
            let (group, message_id) = parse_locator(&r.transaction_id, Reason::InvalidTransactionId)?;
            if !topic.queues.iter().any(|q| GroupId(q.group) == group) {
                return Err(BrokerError::BadRequest {
                    code: Reason::InvalidTransactionId,
                    message: format!("{} holds no queue of topic {:?}", group.name(), topic.name),
                });
            }
            let Some(b) = self.local_leader(group).cloned() else {
                let resp =
                    self.forward_unary(group, &md, r.clone(), |mut c, q| async move { c.end_transaction(q).await }).await?;
                return leader_ok(resp.status);
            };
            if b.end_transaction(&message_id, commit).await? {
                tracing::debug!(%message_id, commit, source = r.source, "transaction ended");
                Ok(())
            } else {
                Err(BrokerError::NotFound {
                    code: Reason::InvalidTransactionId,
                    message: format!(
                        "no open transaction for message {message_id}: it was committed or rolled back already"
                    ),
                })
            }
        }
        .await;
        let status = outcome_status(res, "end transaction");
        pb::EndTransactionResponse { status: Some(status) }
    }

    /// One round of check-backs on the broker groups this node leads.
    async fn check_transactions(&self, opts: TxnOptions) {
        let interval_ms = opts.check_interval.as_millis() as i64;
        for b in self.brokers.all().filter(|b| b.group.is_leader()) {
            let due = match b.halves_due(interval_ms, CHECKS_PER_ROUND).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(group = %b.group.id(), error = %e, "cannot list open transactions");
                    continue;
                }
            };
            for h in due {
                let Ok(view) = RecordView::parse(&h.message.record) else { continue };
                let id = view.message_id.to_string();
                let step = if h.checks >= opts.checks_max {
                    tracing::info!(message_id = %id, checks = h.checks, "transaction still open after its last check; rolling back");
                    b.end_transaction(&id, false).await
                } else {
                    if let Some((client, tx)) = self.sessions.producer_for(&h.topic) {
                        let cmd = pb::TelemetryCommand {
                            status: None,
                            command: Some(pb::telemetry_command::Command::RecoverOrphanedTransactionCommand(
                                pb::RecoverOrphanedTransactionCommand {
                                    message: Some(convert::delivered(&h.message, &view, 1, None)),
                                    transaction_id: locator(b.group.id(), &id),
                                },
                            )),
                        };
                        if tx.try_send(Ok(cmd)).is_ok() {
                            tracing::debug!(message_id = %id, %client, "asked a producer about an open transaction");
                        }
                    }
                    b.record_check(&id).await
                };
                if let Err(e) = step {
                    tracing::warn!(message_id = %id, error = %e, "transaction check failed; next round");
                }
            }
        }
    }
}

/// Runs check-backs until shutdown.
pub async fn run(ctx: Arc<Context>, opts: TxnOptions, mut shutdown: watch::Receiver<bool>) {
    let tick = (opts.check_interval / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        ctx.check_transactions(opts).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip_and_refuse_garbage() {
        let id = locator(GroupId::broker(2), "01ABC");
        assert_eq!(
            parse_locator(&id, Reason::BadRequest).unwrap(),
            (GroupId::broker(2), "01ABC".to_string())
        );
        for bad in ["", "01ABC", "nameserver:01ABC", "broker-b:", "nope:x"] {
            let e = parse_locator(bad, Reason::InvalidTransactionId).unwrap_err();
            assert_eq!(e.code(), Reason::InvalidTransactionId, "{bad}");
        }
    }
}
