//! Transactions over the 4.x protocol: a half message is a send with `TRAN_MSG=true`; the
//! producer ends it with END_TRANSACTION (37), and this front end's [`TxnChecker`] asks a
//! producer of the message's group (its `PGROUP`) with CHECK_TRANSACTION_STATE (39) on that
//! producer's own connection when the core's check-back loop finds it still open.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;

use super::clients::next_opaque;
use super::codec::Command;
use super::codes::request as code;
use super::context::Remoting;
use super::convert::Place;
use super::convert::encode_stored;
use super::header::Header;
use super::message::offset_msg_id;
use super::queues::local_id;
use super::status;
use crate::broker::location::Location;
use crate::broker::txn_check::CheckBack;
use crate::broker::txn_check::TxnChecker;
use crate::error::BrokerError;

/// How long a forwarded END_TRANSACTION may take.
const END_TIMEOUT: Duration = Duration::from_secs(5);
/// `commitOrRollback` values.
const COMMIT: i64 = 8;
const ROLLBACK: i64 = 12;

impl Remoting {
    /// Serves END_TRANSACTION from `peer`.
    pub async fn end_transaction(&self, peer: SocketAddr, req: Command) -> Command {
        match self.end_checked(peer, &req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(error = %e, "4.x end transaction refused");
                status::error(&req, &e)
            }
        }
    }

    async fn end_checked(&self, peer: SocketAddr, req: &Command) -> Result<Command, BrokerError> {
        let h = Header::of(req, false);
        let offset = h.i64("commitLogOffset")?;
        let message_id = h.str("msgId")?;
        let commit = match h.i64("commitOrRollback")? {
            COMMIT => true,
            ROLLBACK => false,
            // Unknown: the producer does not know yet; the check-back asks again later.
            _ => return Ok(status::ok(req)),
        };
        let loc =
            Location::decode(offset).filter(|l| self.brokers.get(l.group).is_some()).ok_or_else(|| {
                BrokerError::bad_request(format!("commitLogOffset {offset} names no message here"))
            })?;
        let Some(b) = self.local_leader(loc.group).cloned() else {
            return Ok(self.forward(loc.group, peer, req.clone(), END_TIMEOUT).await);
        };
        if !b.end_transaction(message_id, commit).await? {
            // Ended already (a check-back answered twice, or a rollback after the last check).
            tracing::debug!(message_id, commit, "4.x end transaction for a transaction no longer open");
        }
        Ok(status::ok(req))
    }
}

impl TxnChecker for Remoting {
    /// CHECK_TRANSACTION_STATE, oneway, to a live producer of the half message's group.
    fn ask(&self, check: &CheckBack<'_>) -> bool {
        let Some((_, group)) = check.view.properties.iter().find(|(k, _)| *k == "PGROUP") else {
            return false;
        };
        let Some(conn) = self.clients.producer_conn(group) else { return false };
        let physical = check.location.encode().unwrap_or(-1);
        let queue = match self.topic_local(&check.half.topic) {
            Ok(Some(t)) => local_id(&t, check.view.queue_id),
            _ => 0,
        };
        let mut body = BytesMut::new();
        let at = Place { queue_id: queue, physical_offset: physical, store_host: self.store_host };
        encode_stored(&mut body, &check.half.message, check.view, at);
        let id = check.view.message_id;
        let cmd = Command::request(code::CHECK_TRANSACTION_STATE, next_opaque())
            .with("tranStateTableOffset", check.half.message.offset)
            .with("commitLogOffset", physical)
            .with("msgId", id)
            .with("transactionId", id)
            .with("offsetMsgId", offset_msg_id(self.store_host, physical))
            .with_body(body.freeze())
            .oneway();
        conn.send(cmd)
    }
}
