//! The queue-offset codes: QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET (15),
//! SEARCH_OFFSET_BY_TIMESTAMP (29), GET_MAX_OFFSET (30), GET_MIN_OFFSET (31) and
//! GET_EARLIEST_MSG_STORETIME (32). Committed offsets are the consumer group's, shared with the
//! gRPC clients.

use std::net::SocketAddr;
use std::time::Duration;

use super::codec::Command;
use super::codes::request as code;
use super::codes::response as rc;
use super::context::Remoting;
use super::header::Header;
use super::status;
use crate::broker::start::Start;
use crate::error::BrokerError;

/// How long a forwarded offset request may take.
const OFFSET_TIMEOUT: Duration = Duration::from_secs(5);

impl Remoting {
    /// Serves one of the offset codes from `peer`.
    pub async fn offsets(&self, peer: SocketAddr, req: Command) -> Command {
        let res = self.offsets_checked(peer, &req).await;
        status::answer(&req, res)
    }

    async fn offsets_checked(&self, peer: SocketAddr, req: &Command) -> Result<Command, BrokerError> {
        let h = Header::of(req, false);
        let topic = self.topic(h.str("topic")?).await?;
        let (g, queue) = self.queue_target(&topic, h.opt("bname"), h.i32("queueId")?)?;
        let Some(b) = self.local_leader(g).cloned() else {
            return Ok(self.forward(g, peer, req.clone(), OFFSET_TIMEOUT).await);
        };
        let t = topic.name.as_str();
        let (min, end) = b.bounds(t, queue);
        let offset = |o: u64| status::ok(req).with("offset", o);
        Ok(match req.code {
            code::GET_MAX_OFFSET => offset(end),
            code::GET_MIN_OFFSET => offset(min),
            code::SEARCH_OFFSET_BY_TIMESTAMP => {
                offset(b.offset_for_time(t, queue, h.i64("timestamp")?).await?)
            }
            code::GET_EARLIEST_MSG_STORETIME => {
                let ms = b.message_at(t, queue, min).await?.map_or(-1, |m| m.store_ms);
                status::ok(req).with("timestamp", ms)
            }
            code::UPDATE_CONSUMER_OFFSET => {
                let group = h.str("consumerGroup")?.to_string();
                b.commit_offset(group, topic.name.clone(), queue, h.i64("commitOffset")?).await?;
                status::ok(req)
            }
            _ => {
                let group = h.str("consumerGroup")?;
                if let Some(o) = b.committed(group, t, queue).await? {
                    return Ok(offset(o));
                }
                // A group new to this queue: RocketMQ's rule for where it starts. For a group
                // created on first use, offset 0 while the queue's head is still hot, else "no
                // offset" (22), and the client starts where its consumeFromWhere says.
                let start =
                    self.consumer_group(group).await.map(|g| Start::of(&g)).unwrap_or(Start::HotHeadOrNewest);
                let o = b.start_offset(start, t, queue).await?;
                match start {
                    Start::HotHeadOrNewest if o != 0 => req.response(
                        rc::QUERY_NOT_FOUND,
                        Some(format!("consumer group {group} has no offset on {t} queue {queue}")),
                    ),
                    _ => offset(o),
                }
            }
        })
    }
}
