//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361): a 4.x consumer reads a queue by offset, with
//! long polling, through the core's pull (`broker::read`); the messages go back in the 4.x
//! stored-message layout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use raftmq_storage::broker::record::RecordView;
use tokio::time::Instant;

use super::clients::filter_of;
use super::codec::Command;
use super::codes::response as rc;
use super::context::Remoting;
use super::convert::Place;
use super::convert::encode_stored;
use super::header::Header;
use super::queues::local_id;
use super::status;
use crate::broker::read::PullRequest;
use crate::error::BrokerError;

/// sysFlag bits of a pull.
const COMMIT_OFFSET: i64 = 1;
const SUSPEND: i64 = 2;
const SUBSCRIPTION: i64 = 4;
/// Longest long poll served (the Java client waits 30 s for the answer).
const SUSPEND_MAX: Duration = Duration::from_secs(25);
/// Most messages one pull returns.
const PULL_MAX: i64 = 1024;
/// Most record bytes one pull returns (after its first message), well inside a frame.
const PULL_BYTES_MAX: usize = 4 << 20;

impl Remoting {
    /// Serves a pull from `peer`.
    pub async fn pull(&self, peer: SocketAddr, req: Command) -> Command {
        let res = self.pull_checked(peer, &req).await;
        status::answer(&req, res)
    }

    async fn pull_checked(&self, peer: SocketAddr, req: &Command) -> Result<Command, BrokerError> {
        let h = Header::of(req, false);
        let group = h.str("consumerGroup")?;
        let topic = self.topic(h.str("topic")?).await?;
        let (g, queue) = self.queue_target(&topic, h.opt("bname"), h.i32("queueId")?)?;
        let offset = h.i64("queueOffset")?;
        let sys_flag = h.opt_i64("sysFlag")?.unwrap_or(0);
        let wait = if sys_flag & SUSPEND != 0 {
            Duration::from_millis(h.opt_i64("suspendTimeoutMillis")?.unwrap_or(15_000).max(0) as u64)
                .min(SUSPEND_MAX)
        } else {
            Duration::ZERO
        };
        let Some(b) = self.local_leader(g).cloned() else {
            return Ok(self.forward(g, peer, req.clone(), wait + Duration::from_secs(5)).await);
        };
        let filter = if sys_flag & SUBSCRIPTION != 0 {
            filter_of(h.opt("expressionType"), h.opt("subscription").unwrap_or("*"))?
        } else {
            match self.clients.subscription(group, &topic.name) {
                Some(s) => s.filter()?,
                None => {
                    return Ok(req.response(
                        rc::SUBSCRIPTION_NOT_EXIST,
                        Some(format!(
                            "consumer group {group} has no subscription to {} here: heartbeat first",
                            topic.name
                        )),
                    ));
                }
            }
        };
        if offset < 0 {
            return Err(BrokerError::bad_request(format!("queueOffset {offset} is negative")));
        }
        if sys_flag & COMMIT_OFFSET != 0
            && let Some(c) = h.opt_i64("commitOffset")?.filter(|c| *c >= 0)
            && b.data.read(|s| s.committed(group, &topic.name, queue)) != Some(c as u64)
        {
            // The push consumer's offset rides on its pulls; a failure here is retried by its
            // next pull or its periodic UPDATE_CONSUMER_OFFSET.
            if let Err(e) = b.commit_offset(group.to_string(), topic.name.clone(), queue, c).await {
                tracing::debug!(group, topic = %topic.name, queue, error = %e, "offset carried by a pull not committed");
            }
        }
        let max = h.opt_i64("maxMsgNums")?.unwrap_or(32).clamp(1, PULL_MAX) as usize;
        let pulled = b
            .pull(&PullRequest {
                topic: &topic.name,
                queue,
                offset: offset as u64,
                max,
                bytes_max: PULL_BYTES_MAX,
                filter: &filter,
                deadline: Instant::now() + wait,
            })
            .await?;
        let (min, end) = b.bounds(&topic.name, queue);
        let answer = |code: i32, next: u64, remark: Option<String>| {
            req.response(code, remark)
                .with("suggestWhichBrokerId", 0)
                .with("nextBeginOffset", next)
                .with("minOffset", min)
                .with("maxOffset", end)
        };
        let p = match pulled {
            Err(range) => {
                let next = if (offset as u64) < range.min { range.min } else { range.end };
                return Ok(answer(
                    rc::PULL_OFFSET_MOVED,
                    next,
                    Some(format!(
                        "offset {offset} is outside the queue: readable offsets are {}..{}",
                        range.min, range.end
                    )),
                ));
            }
            Ok(p) => p,
        };
        if p.messages.is_empty() {
            return Ok(answer(rc::PULL_NOT_FOUND, p.next_offset, Some("no new message".into())));
        }
        let local_queue = local_id(&topic, queue);
        let mut body = BytesMut::new();
        for m in &p.messages {
            match RecordView::parse(&m.record) {
                Ok(view) => {
                    let at = Place {
                        queue_id: local_queue,
                        physical_offset: b.location(m).encode().unwrap_or(-1),
                        store_host: self.store_host,
                    };
                    encode_stored(&mut body, m, &view, at);
                }
                Err(e) => {
                    tracing::error!(group = %g, offset = m.offset, error = %e, "stored message does not decode")
                }
            }
        }
        Ok(answer(rc::SUCCESS, p.next_offset, None).with_body(body.freeze()))
    }
}
