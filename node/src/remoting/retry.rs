//! CONSUMER_SEND_MSG_BACK (36): a 4.x consumer whose listener failed hands the message back; the
//! core's rule (`broker::moves`) copies it to `%RETRY%<group>` after the group's retry delay for
//! that attempt (or the delay level the consumer asked for), or to `%DLQ%<group>` after the
//! group's last attempt.

use std::net::SocketAddr;
use std::time::Duration;

use raftmq_storage::broker::record::RecordView;
use raftmq_storage::nameserver::names;

use super::codec::Command;
use super::context::Remoting;
use super::convert::delay_ms;
use super::header::Header;
use super::status;
use crate::broker::location::Location;
use crate::broker::moves::MoveKind;
use crate::broker::moves::MovePolicy;
use crate::broker::moves::attempts_before;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::error::Reason;

/// How long a forwarded send-back may take.
const SEND_BACK_TIMEOUT: Duration = Duration::from_secs(5);

impl Remoting {
    /// Serves a send-back from `peer`.
    pub async fn send_back(&self, peer: SocketAddr, req: Command) -> Command {
        let res = self.send_back_checked(peer, &req).await;
        status::answer(&req, res)
    }

    async fn send_back_checked(&self, peer: SocketAddr, req: &Command) -> Result<Command, BrokerError> {
        let h = Header::of(req, false);
        let group = h.str("group")?;
        let offset = h.i64("offset")?;
        let level = h.opt_i64("delayLevel")?.unwrap_or(0);
        let loc = Location::decode(offset).ok_or_else(|| {
            BrokerError::bad_request(format!("offset {offset} is not the physical offset of a message here"))
        })?;
        let Some(b) = self.local_leader(loc.group).cloned() else {
            if self.brokers.get(loc.group).is_none() {
                return Err(BrokerError::bad_request(format!(
                    "offset {offset} names no broker group of this cluster"
                )));
            }
            return Ok(self.forward(loc.group, peer, req.clone(), SEND_BACK_TIMEOUT).await);
        };
        let cg = self.consumer_group(group).await?;
        let message = b.message_by_location(loc).await?.ok_or_else(|| BrokerError::NotFound {
            code: Reason::MessageNotFound,
            message: format!("no message at offset {offset}: it was removed by retention"),
        })?;
        let view = RecordView::parse(&message.record).map_err(|e| BrokerError::Internal(e.to_string()))?;
        // Deliveries so far: the ones before this copy, and this one.
        let attempt = attempts_before(&view) + 1;
        let retry_at = now_ms() + delay_ms(level).unwrap_or_else(|| self.retry_delay_ms(attempt));
        let policy = self.ns.read_local(|s| MovePolicy::of(s, &cg, loc.group));
        // As in Apache RocketMQ: the consumer's own maxReconsumeTimes, when it gives one, says
        // when a message is dead; a negative delay level sends it there at once.
        let kind = match h.opt_i64("maxReconsumeTimes")? {
            _ if level < 0 => Some(MoveKind::DeadLetter),
            Some(max) if i64::from(attempts_before(&view)) >= max => Some(MoveKind::DeadLetter),
            Some(_) => Some(MoveKind::Retry),
            None => None,
        };
        match b.hand_back(&policy, &message, attempt, retry_at, kind).await? {
            Some(kind) => {
                tracing::debug!(
                    group,
                    message_id = view.message_id,
                    attempt,
                    ?kind,
                    "4.x consumer handed a message back"
                );
                Ok(status::ok(req))
            }
            None => Err(BrokerError::Internal(format!(
                "consumer group {group} has neither {} nor {} on {}",
                names::retry_topic(group),
                names::dlq_topic(group),
                loc.group
            ))),
        }
    }
}
