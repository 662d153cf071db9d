//! `ForwardMessageToDeadLetterQueue`: a consumer gives up on a message it received (the official
//! push consumers do this after the last delivery attempt fails) and it moves to the group's
//! `%DLQ%` topic at once, under the same rules as a dead letter found by a receive.

use raftmq_proto::rocketmq as pb;
use tonic::Request;

use super::context::Context;
use super::context::leader_ok;
use super::groups::group_name;
use super::receipt::ReceiptHandle;
use super::receive::topic_name;
use super::status::outcome_status;
use crate::broker::moves::MoveKind;
use crate::broker::moves::Moving;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::session::client_id;

impl Context {
    /// Moves the message a receipt handle names to its group's dead-letter topic, here or on
    /// the leader of its broker group.
    pub async fn forward_to_dead_letter_queue(
        &self,
        req: Request<pb::ForwardMessageToDeadLetterQueueRequest>,
    ) -> pb::ForwardMessageToDeadLetterQueueResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let res = async {
            client_id(&md)?;
            let group = group_name(r.group.as_ref())?;
            let topic = self.topic(&topic_name(r.topic.as_ref())).await?;
            let handle = ReceiptHandle::parse(&r.receipt_handle)?;
            let Some(b) = self.local_leader(handle.group).cloned() else {
                let resp = self
                    .forward_unary(handle.group, &md, r.clone(), |mut c, q| async move {
                        c.forward_message_to_dead_letter_queue(q).await
                    })
                    .await?;
                return leader_ok(resp.status);
            };
            let dlq = self.dead_letter_queue(&group, handle.group).ok_or_else(|| BrokerError::NotFound {
                code: Reason::TopicNotFound,
                message: format!(
                    "consumer group {group:?} has no dead-letter topic (groups created before dead letters existed); \
                     recreate the group"
                ),
            })?;
            let gone = || BrokerError::BadRequest {
                code: Reason::InvalidReceiptHandle,
                message: "the message was acked, delivered again or removed since this handle was issued".into(),
            };
            let source = handle.source_topic(&group, &topic.name);
            let message = b.message_at(&source, handle.queue, handle.offset).await?.ok_or_else(gone)?;
            let dying = Moving {
                queue: handle.queue,
                message,
                epoch: handle.epoch,
                attempt: u32::try_from(r.delivery_attempt).unwrap_or(1).max(1),
            };
            if !b.move_out(&group, &source, MoveKind::DeadLetter, &dlq, &[dying]).await? {
                return Err(gone());
            }
            self.renewals.release(&group, &handle);
            Ok(())
        }
        .await;
        let status = outcome_status(res, "forward to dead-letter queue");
        pb::ForwardMessageToDeadLetterQueueResponse { status: Some(status) }
    }
}
