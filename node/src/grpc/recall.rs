//! `RecallMessage`: cancels a delayed message that is still waiting for its delivery time, by the
//! recall handle its send returned.

use raftmq_proto::rocketmq as pb;
use tonic::Request;

use super::context::Context;
use super::context::leader_ok;
use super::receive::topic_name;
use super::status::outcome_status;
use super::transaction::parse_locator;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::session::client_id;

impl Context {
    /// Recalls a delayed message, here or on the leader of its broker group.
    pub async fn recall(&self, req: Request<pb::RecallMessageRequest>) -> pb::RecallMessageResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let mut message_id = String::new();
        let res = async {
            client_id(&md)?;
            let topic = self.topic(&topic_name(r.topic.as_ref())).await?;
            let (group, id) = parse_locator(&r.recall_handle, Reason::BadRequest)?;
            message_id = id.clone();
            if !topic.queues.iter().any(|q| raftmq_storage::GroupId(q.group) == group) {
                return Err(BrokerError::bad_request(format!(
                    "{} holds no queue of topic {:?}",
                    group.name(),
                    topic.name
                )));
            }
            let Some(b) = self.local_leader(group).cloned() else {
                let resp = self
                    .forward_unary(group, &md, r.clone(), |mut c, q| async move { c.recall_message(q).await })
                    .await?;
                return leader_ok(resp.status);
            };
            if b.recall(&id).await? {
                Ok(())
            } else {
                Err(BrokerError::NotFound {
                    code: Reason::MessageNotFound,
                    message: format!(
                        "message {id} is not waiting for delivery: it was delivered or recalled already"
                    ),
                })
            }
        }
        .await;
        let status = outcome_status(res, "recall");
        pb::RecallMessageResponse { status: Some(status), message_id }
    }
}
