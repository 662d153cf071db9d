//! Transactions over the RocketMQ 5 protocol: `EndTransaction` (commit or roll back a half
//! message), and this front end's [`TxnChecker`]: the core's check-back loop
//! (`broker::txn_check`) shows an open transaction to a live producer of its topic as a
//! `RecoverOrphanedTransactionCommand` on that producer's Telemetry stream (the producer's
//! checker answers with `EndTransaction`).

use raftmq_proto::rocketmq as pb;
use raftmq_storage::GroupId;
use tonic::Request;

use super::context::Context;
use super::context::leader_ok;
use super::convert;
use super::receive::topic_name;
use super::status::outcome_status;
use crate::broker::txn_check::CheckBack;
use crate::broker::txn_check::TxnChecker;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::session::client_id;

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
}

impl TxnChecker for Context {
    /// A `RecoverOrphanedTransactionCommand` on the Telemetry stream of a producer of the topic.
    fn ask(&self, check: &CheckBack<'_>) -> bool {
        let Some((client, tx)) = self.sessions.producer_for(&check.half.topic) else { return false };
        let cmd = pb::TelemetryCommand {
            status: None,
            command: Some(pb::telemetry_command::Command::RecoverOrphanedTransactionCommand(
                pb::RecoverOrphanedTransactionCommand {
                    message: Some(convert::delivered(&check.half.message, check.view, 1, None)),
                    transaction_id: locator(check.location.group, check.view.message_id),
                },
            )),
        };
        let sent = tx.try_send(Ok(cmd)).is_ok();
        if sent {
            tracing::debug!(message_id = check.view.message_id, %client, "asked a gRPC producer about an open transaction");
        }
        sent
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
