//! `QueryRoute`, `PullMessage`, `GetOffset`, `UpdateOffset` and `QueryOffset`.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;
use raftmq_storage::GroupId;
use raftmq_storage::broker::record::RecordView;
use tokio::time::Instant;
use tonic::Request;
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::context::Context;
use super::context::deadline_left;
use super::context::leader_ok;
use super::context::leader_silent;
use super::groups::group_name;
use super::receive::filter_of;
use super::status::ok_status;
use super::status::status;
use crate::broker::read::PullRequest;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::forward::forwarded;

/// The stream a `PullMessage` answers with.
pub type PullStream = Pin<Box<dyn Stream<Item = Result<pb::PullMessageResponse, Status>> + Send>>;

/// Longest long poll a pull may ask for.
const POLL_MAX: Duration = Duration::from_secs(30);
/// Margin kept before the caller's deadline so the answer arrives in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(200);
/// Most messages one pull returns.
const PULL_BATCH_MAX: i32 = 1024;
/// Most body bytes one pull returns (after its first message).
const PULL_BYTES_MAX: usize = 8 << 20;

fn queue_of(q: Option<&pb::MessageQueue>) -> Result<(String, i32), BrokerError> {
    let q = q.ok_or_else(|| BrokerError::bad_request("message_queue is missing"))?;
    let topic = q.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    Ok((topic, q.id))
}

/// A pull answer carrying only an error status.
pub fn pull_status(e: BrokerError) -> PullStream {
    Box::pin(futures::stream::iter([Ok(pb::PullMessageResponse {
        content: Some(pb::pull_message_response::Content::Status(status(&e))),
    })]))
}

impl Context {
    /// `QueryRoute`: every queue of the topic, each pointing at its group's current leader.
    pub async fn query_route(&self, req: pb::QueryRouteRequest) -> pb::QueryRouteResponse {
        let name = req.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        let topic = match self.producer_topic(&name).await {
            Ok(t) => t,
            Err(e) => return pb::QueryRouteResponse { status: Some(status(&e)), message_queues: Vec::new() },
        };
        let resource = req.topic.clone().unwrap_or_default();
        let queues = topic
            .queues
            .iter()
            .map(|q| {
                let g = GroupId(q.group);
                // Without a known leader, point at this node: it forwards once one is elected.
                let addr = self.leader(g).map_or_else(|| self.advertise.clone(), |l| l.client_addr);
                pb::MessageQueue {
                    topic: Some(resource.clone()),
                    id: q.queue_id as i32,
                    permission: super::convert::permission(topic.permission) as i32,
                    broker: Some(pb::Broker {
                        name: g.name(),
                        id: 0,
                        endpoints: Some(super::convert::endpoints(&addr)),
                    }),
                    accept_message_types: super::convert::accepted_types(topic.message_type),
                }
            })
            .collect();
        pb::QueryRouteResponse { status: Some(ok_status()), message_queues: queues }
    }

    /// `PullMessage`: status, the messages, then the next offset.
    pub async fn pull(&self, req: Request<pb::PullMessageRequest>) -> Result<PullStream, Status> {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let parsed = async {
            group_name(r.group.as_ref())?;
            let (topic, queue) = queue_of(r.message_queue.as_ref())?;
            let t = self.topic(&topic).await?;
            let g = self.queue_group(&t, queue)?;
            if r.offset < 0 {
                return Err(BrokerError::BadRequest {
                    code: Reason::IllegalOffset,
                    message: format!("offset {} is negative", r.offset),
                });
            }
            let filter = filter_of(r.filter_expression.as_ref())?;
            Ok((topic, queue, g, filter))
        }
        .await;
        let (topic, queue, g, filter) = match parsed {
            Ok(p) => p,
            Err(e) => return Ok(pull_status(e)),
        };
        let Some(b) = self.local_leader(g).cloned() else {
            return self.forward_pull(g, r, &md).await;
        };
        let wait = r
            .long_polling_timeout
            .map_or(Duration::ZERO, |d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32))
            .min(POLL_MAX);
        let wait = match deadline_left(&md) {
            Some(left) => wait.min(left.saturating_sub(DEADLINE_MARGIN)),
            None => wait,
        };
        let max = r.batch_size.clamp(1, PULL_BATCH_MAX) as usize;
        let pulled = b
            .pull(&PullRequest {
                topic: &topic,
                queue: queue as u32,
                offset: r.offset as u64,
                max,
                bytes_max: PULL_BYTES_MAX,
                filter: &filter,
                deadline: Instant::now() + wait,
            })
            .await;
        use pb::pull_message_response::Content;
        let items: Vec<Result<pb::PullMessageResponse, Status>> = match pulled {
            Err(e) => vec![Ok(pb::PullMessageResponse { content: Some(Content::Status(status(&e))) })],
            Ok(Err(range)) => vec![
                Ok(pb::PullMessageResponse {
                    content: Some(Content::Status(pb::Status {
                        code: Code::IllegalOffset as i32,
                        message: format!(
                            "offset {} is outside the queue: readable offsets are {}..{}",
                            r.offset, range.min, range.end
                        ),
                    })),
                }),
                Ok(pb::PullMessageResponse {
                    content: Some(Content::NextOffset(if r.offset < range.min as i64 {
                        range.min
                    } else {
                        range.end
                    } as i64)),
                }),
            ],
            Ok(Ok(p)) => {
                let mut out = Vec::with_capacity(p.messages.len() + 2);
                let status = if p.messages.is_empty() {
                    pb::Status { code: Code::MessageNotFound as i32, message: "no new message".into() }
                } else {
                    ok_status()
                };
                out.push(Ok(pb::PullMessageResponse { content: Some(Content::Status(status)) }));
                for m in &p.messages {
                    match RecordView::parse(&m.record) {
                        Ok(view) => out.push(Ok(pb::PullMessageResponse {
                            content: Some(Content::Message(super::convert::delivered(m, &view, 1, None))),
                        })),
                        Err(e) => {
                            tracing::error!(group = %g, offset = m.offset, error = %e, "stored message does not decode")
                        }
                    }
                }
                out.push(Ok(pb::PullMessageResponse {
                    content: Some(Content::NextOffset(p.next_offset as i64)),
                }));
                out
            }
        };
        Ok(Box::pin(futures::stream::iter(items)))
    }

    async fn forward_pull(
        &self,
        g: GroupId,
        r: pb::PullMessageRequest,
        md: &MetadataMap,
    ) -> Result<PullStream, Status> {
        let target = match self.forward_target(g, super::context::forwarded_here(md)) {
            Ok(t) => t,
            Err(e) => return Ok(pull_status(e)),
        };
        let mut client = match self.client(&target.client_addr) {
            Ok(c) => c,
            Err(e) => return Ok(pull_status(e)),
        };
        let fwd = forwarded(r, md, self.node_id, deadline_left(md).unwrap_or(Duration::from_secs(35)));
        match client.pull_message(fwd).await {
            Ok(resp) => Ok(Box::pin(resp.into_inner())),
            Err(s) => Ok(pull_status(leader_silent(target.node, &g, &s))),
        }
    }

    /// `GetOffset`: the committed offset of a consumer group on a queue.
    pub async fn get_offset(&self, req: Request<pb::GetOffsetRequest>) -> pb::GetOffsetResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let res: Result<i64, BrokerError> = async {
            let group = group_name(r.group.as_ref())?;
            let (topic, queue) = queue_of(r.message_queue.as_ref())?;
            let t = self.topic(&topic).await?;
            let g = self.queue_group(&t, queue)?;
            let Some(b) = self.local_leader(g) else {
                let resp = self
                    .forward_unary(g, &md, r.clone(), |mut c, q| async move { c.get_offset(q).await })
                    .await?;
                return leader_ok(resp.status).map(|()| resp.offset);
            };
            match b.committed(&group, &topic, queue as u32).await? {
                Some(o) => Ok(o as i64),
                None => Err(BrokerError::NotFound {
                    code: Reason::OffsetNotFound,
                    message: format!(
                        "consumer group {group:?} has no committed offset on {topic} queue {queue}"
                    ),
                }),
            }
        }
        .await;
        match res {
            Ok(offset) => pb::GetOffsetResponse { status: Some(ok_status()), offset },
            Err(e) => pb::GetOffsetResponse { status: Some(status(&e)), offset: 0 },
        }
    }

    /// `UpdateOffset`: commits a consumer group's offset through the group's Raft log.
    pub async fn update_offset(&self, req: Request<pb::UpdateOffsetRequest>) -> pb::UpdateOffsetResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let res: Result<(), BrokerError> = async {
            let group = group_name(r.group.as_ref())?;
            let (topic, queue) = queue_of(r.message_queue.as_ref())?;
            let t = self.topic(&topic).await?;
            let g = self.queue_group(&t, queue)?;
            let Some(b) = self.local_leader(g) else {
                let resp = self
                    .forward_unary(g, &md, r.clone(), |mut c, q| async move { c.update_offset(q).await })
                    .await?;
                return leader_ok(resp.status);
            };
            b.commit_offset(group, topic, queue as u32, r.offset).await
        }
        .await;
        pb::UpdateOffsetResponse { status: Some(res.map_or_else(|e| status(&e), |()| ok_status())) }
    }

    /// `QueryOffset`: the first, the end, or the first offset stored at or after a time.
    pub async fn query_offset(&self, req: Request<pb::QueryOffsetRequest>) -> pb::QueryOffsetResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let res: Result<i64, BrokerError> = async {
            let (topic, queue) = queue_of(r.message_queue.as_ref())?;
            let t = self.topic(&topic).await?;
            let g = self.queue_group(&t, queue)?;
            let Some(b) = self.local_leader(g) else {
                let resp = self
                    .forward_unary(g, &md, r.clone(), |mut c, q| async move { c.query_offset(q).await })
                    .await?;
                return leader_ok(resp.status).map(|()| resp.offset);
            };
            let (min, end) = b.bounds(&topic, queue as u32);
            match pb::QueryOffsetPolicy::try_from(r.query_offset_policy) {
                Ok(pb::QueryOffsetPolicy::Beginning) => Ok(min as i64),
                Ok(pb::QueryOffsetPolicy::End) => Ok(end as i64),
                Ok(pb::QueryOffsetPolicy::Timestamp) => {
                    let ts = r
                        .timestamp
                        .as_ref()
                        .ok_or_else(|| BrokerError::bad_request("query by TIMESTAMP needs a timestamp"))?;
                    Ok(b.offset_for_time(&topic, queue as u32, super::convert::millis(ts)).await? as i64)
                }
                Err(_) => Err(BrokerError::bad_request(format!(
                    "unknown query_offset_policy {}",
                    r.query_offset_policy
                ))),
            }
        }
        .await;
        match res {
            Ok(offset) => pb::QueryOffsetResponse { status: Some(ok_status()), offset },
            Err(e) => pb::QueryOffsetResponse { status: Some(status(&e)), offset: 0 },
        }
    }
}
