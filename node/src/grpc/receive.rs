//! `ReceiveMessage`, `AckMessage`, `ChangeInvisibleDuration` and `QueryAssignment`: consuming
//! with invisible time, as the RocketMQ 5 simple and push consumers do.
//!
//! Requests name a broker group (`message_queue.broker.name`); the node forwards them to that
//! group's leader, which hands messages out through the group's Raft log (see
//! `broker::pop`). Acks and changes of invisible time go where the receipt handle says.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use futures::StreamExt;
use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;
use raftmq_storage::GroupId;
use raftmq_storage::broker::pop::AckOp;
use raftmq_storage::broker::pop::AckResult;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::nameserver::ConsumeMode;
use raftmq_storage::nameserver::ConsumerGroup;
use raftmq_storage::nameserver::Permission;
use raftmq_storage::nameserver::Topic;
use tokio::time::Instant;
use tonic::Request;
use tonic::Status;
use tonic::metadata::MetadataMap;

use super::context::Context;
use super::context::deadline_left;
use super::context::leader_ok;
use super::context::leader_refused;
use super::context::leader_silent;
use super::convert;
use super::groups::group_name;
use super::receipt::ReceiptHandle;
use super::renew::AUTO_RENEW_INVISIBLE_MS;
use super::status::ok_status;
use super::status::status;
use crate::broker::filter::Filter;
use crate::broker::moves::MovePolicy;
use crate::broker::pop::ReceiveRequest;
use crate::broker::start::Start;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::forward::forwarded;
use crate::session::client_id;

/// The stream a `ReceiveMessage` answers with.
pub type ReceiveStream = Pin<Box<dyn Stream<Item = Result<pb::ReceiveMessageResponse, Status>> + Send>>;

/// Long poll when the request names none (the RocketMQ proxy's default).
const POLL_DEFAULT: Duration = Duration::from_secs(20);
/// Longest long poll.
const POLL_MAX: Duration = Duration::from_secs(30);
/// Kept before the caller's deadline so the answer arrives in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1000);
/// Longest invisible time (RocketMQ's limit).
const INVISIBLE_MS_MAX: i64 = 12 * 3600 * 1000;
/// Most messages one receive hands out.
const RECEIVE_BATCH_MAX: i32 = 1024;
/// Header asking a leader to renew (keep the epoch) instead of changing the invisible time.
const RENEW_HEADER: &str = "x-raftmq-renew";

/// A checked receive.
struct Receive {
    client: String,
    group: ConsumerGroup,
    topic: String,
    broker: GroupId,
    queues: Vec<u32>,
    filter: Filter,
    max: usize,
    invisible_ms: i64,
    auto_renew: bool,
    wait: Duration,
}

fn receive_items(status: pb::Status, messages: Vec<pb::Message>) -> ReceiveStream {
    use pb::receive_message_response::Content;
    let mut out = Vec::with_capacity(messages.len() + 2);
    out.push(Ok(pb::ReceiveMessageResponse { content: Some(Content::Status(status)) }));
    out.extend(
        messages.into_iter().map(|m| Ok(pb::ReceiveMessageResponse { content: Some(Content::Message(m)) })),
    );
    out.push(Ok(pb::ReceiveMessageResponse {
        content: Some(Content::DeliveryTimestamp(convert::timestamp(now_ms()))),
    }));
    Box::pin(futures::stream::iter(out))
}

fn receive_error(e: BrokerError) -> ReceiveStream {
    receive_items(status(&e), Vec::new())
}

fn millis_of(d: &raftmq_proto::prost_types::Duration) -> i64 {
    d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000)
}

/// The filter of a subscription expression.
pub fn filter_of(f: Option<&pb::FilterExpression>) -> Result<Filter, BrokerError> {
    match f {
        Some(f) if f.r#type == pb::FilterType::Sql as i32 => Filter::sql(&f.expression),
        Some(f) => Filter::tags(&f.expression),
        None => Ok(Filter::All),
    }
}

pub(super) fn topic_name(r: Option<&pb::Resource>) -> String {
    r.map(|t| t.name.clone()).unwrap_or_default()
}

fn readable(topic: &Topic) -> Result<(), BrokerError> {
    if topic.permission == Permission::Write {
        return Err(BrokerError::BadRequest {
            code: Reason::Forbidden,
            message: format!("topic {:?} is write-only; make it readable with `topic update`", topic.name),
        });
    }
    Ok(())
}

impl Context {
    /// Checks an invisible time against the allowed range.
    fn check_invisible(&self, ms: i64) -> Result<i64, BrokerError> {
        let min = self.options.invisible_ms_min;
        if ms < min || ms > INVISIBLE_MS_MAX {
            return Err(BrokerError::BadRequest {
                code: Reason::IllegalInvisibleTime,
                message: format!("invisible time {ms} ms is outside {min} ms - 12 h"),
            });
        }
        Ok(ms)
    }

    async fn check_receive(
        &self,
        md: &MetadataMap,
        r: &pb::ReceiveMessageRequest,
    ) -> Result<Receive, BrokerError> {
        let client = client_id(md)?;
        let group_name = group_name(r.group.as_ref())?;
        let mq =
            r.message_queue.as_ref().ok_or_else(|| BrokerError::bad_request("message_queue is missing"))?;
        let topic = self.topic(&topic_name(mq.topic.as_ref())).await?;
        readable(&topic)?;
        let filter = filter_of(r.filter_expression.as_ref())?;
        if r.batch_size < 1 || r.batch_size > RECEIVE_BATCH_MAX {
            return Err(BrokerError::bad_request(format!(
                "batch_size {} is outside 1-{RECEIVE_BATCH_MAX}",
                r.batch_size
            )));
        }
        let invisible_ms = if r.auto_renew {
            AUTO_RENEW_INVISIBLE_MS
        } else {
            let d = r.invisible_duration.as_ref().ok_or_else(|| BrokerError::BadRequest {
                code: Reason::IllegalInvisibleTime,
                message: "invisible_duration is missing; set it, or set auto_renew".into(),
            })?;
            self.check_invisible(millis_of(d))?
        };
        let group = self.consumer_group(&group_name).await?;
        if group.mode == ConsumeMode::Broadcasting {
            return Err(BrokerError::BadRequest {
                code: Reason::BadRequest,
                message: format!(
                    "consumer group {group_name:?} is BROADCASTING: every consumer reads every message by \
                     offset (PullMessage); ReceiveMessage is for CLUSTERING groups"
                ),
            });
        }
        // The broker group: named by the request, or the one holding the requested queue.
        let broker_name = mq.broker.as_ref().map(|b| b.name.as_str()).unwrap_or_default();
        let broker = if broker_name.is_empty() {
            if mq.id < 0 {
                return Err(BrokerError::bad_request(
                    "message_queue names neither a broker nor a queue; use an entry of QueryRoute or QueryAssignment",
                ));
            }
            self.queue_group(&topic, mq.id)?
        } else {
            GroupId::parse(broker_name).filter(|g| g.is_broker()).ok_or_else(|| {
                BrokerError::bad_request(format!(
                    "broker {broker_name:?} does not exist; use a name from QueryRoute"
                ))
            })?
        };
        let mut queues: Vec<u32> =
            topic.queues.iter().filter(|q| GroupId(q.group) == broker).map(|q| q.queue_id).collect();
        if queues.is_empty() {
            return Err(BrokerError::bad_request(format!(
                "broker {} holds no queue of topic {:?}",
                broker.name(),
                topic.name
            )));
        }
        // An orderly group receives from the queue it was assigned; others from the whole broker.
        if group.fifo && mq.id >= 0 {
            let q = mq.id as u32;
            if !queues.contains(&q) {
                return Err(BrokerError::bad_request(format!(
                    "queue {} of topic {:?} is not on broker {}",
                    mq.id,
                    topic.name,
                    broker.name()
                )));
            }
            queues = vec![q];
        } else {
            // Start at a different queue each time so no queue starves.
            let start = self.next_rr() % queues.len();
            queues.rotate_left(start);
        }
        let asked = r
            .long_polling_timeout
            .as_ref()
            .map_or(POLL_DEFAULT, |d| Duration::from_millis(millis_of(d).max(0) as u64));
        let mut wait = asked.min(POLL_MAX);
        if let Some(left) = deadline_left(md) {
            let margin = DEADLINE_MARGIN.min(left / 2);
            wait = wait.min(left.saturating_sub(margin));
        }
        Ok(Receive {
            client,
            group,
            topic: topic.name,
            broker,
            queues,
            filter,
            max: r.batch_size as usize,
            invisible_ms,
            auto_renew: r.auto_renew,
            wait,
        })
    }

    /// `ReceiveMessage`: status, the messages handed out, then the delivery time.
    pub async fn receive(&self, req: Request<pb::ReceiveMessageRequest>) -> ReceiveStream {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let rc = match self.check_receive(&md, &r).await {
            Ok(rc) => rc,
            Err(e) => {
                tracing::debug!(error = %e, "receive refused");
                return receive_error(e);
            }
        };
        let started = std::time::Instant::now();
        let messages = match self.local_leader(rc.broker).cloned() {
            Some(b) => {
                let req = ReceiveRequest {
                    group: &rc.group.name,
                    topic: &rc.topic,
                    queues: rc.queues.clone(),
                    filter: &rc.filter,
                    max: rc.max,
                    invisible_ms: rc.invisible_ms,
                    start: Start::of(&rc.group),
                    fifo: rc.group.fifo,
                    moves: self.ns.read_local(|s| MovePolicy::of(s, &rc.group, rc.broker)),
                    retry_first: self.next_rr().is_multiple_of(4),
                    deadline: Instant::now() + rc.wait,
                };
                match b.receive(&req).await {
                    Ok(ds) => ds
                        .into_iter()
                        .filter_map(|d| {
                            let view = match RecordView::parse(&d.message.record) {
                                Ok(v) => v,
                                Err(e) => {
                                    tracing::error!(group = %rc.broker, offset = d.message.offset, error = %e, "stored message does not decode");
                                    return None;
                                }
                            };
                            let handle = ReceiptHandle {
                                group: rc.broker,
                                queue: d.queue,
                                offset: d.message.offset,
                                epoch: d.inflight.epoch,
                                deadline_ms: d.inflight.deadline_ms,
                                retry: d.retry,
                            };
                            Some(convert::delivered(&d.message, &view, d.attempt as i32, Some(handle.encode())))
                        })
                        .collect(),
                    Err(e) => return receive_error(e),
                }
            }
            None => match self.forward_receive(rc.broker, r, &md, rc.wait).await {
                Ok(items) => items,
                Err(e) => return receive_error(e),
            },
        };
        tracing::debug!(
            broker = %rc.broker, topic = %rc.topic, consumer_group = %rc.group.name, count = messages.len(),
            waited_ms = started.elapsed().as_millis() as u64, "receive answered"
        );
        if rc.auto_renew {
            for m in &messages {
                if let Some(h) = m.system_properties.as_ref().and_then(|s| s.receipt_handle.as_deref())
                    && let Ok(h) = ReceiptHandle::parse(h)
                {
                    self.renewals.hold(&rc.client, &rc.group.name, &rc.topic, h);
                }
            }
        }
        if messages.is_empty() {
            receive_items(
                pb::Status { code: Code::MessageNotFound as i32, message: "no new message".into() },
                messages,
            )
        } else {
            receive_items(ok_status(), messages)
        }
    }

    /// Receives through the leader of `g`; the messages it handed out.
    async fn forward_receive(
        &self,
        g: GroupId,
        r: pb::ReceiveMessageRequest,
        md: &MetadataMap,
        wait: Duration,
    ) -> Result<Vec<pb::Message>, BrokerError> {
        let target = self.forward_target(g, super::context::forwarded_here(md))?;
        let mut client = self.client(&target.client_addr)?;
        let timeout = deadline_left(md).unwrap_or(wait + Duration::from_secs(5));
        let unavailable = |s: Status| leader_silent(target.node, &g, &s);
        let mut stream = client
            .receive_message(forwarded(r, md, self.node_id, timeout))
            .await
            .map_err(unavailable)?
            .into_inner();
        use pb::receive_message_response::Content;
        let mut messages = Vec::new();
        while let Some(item) = stream.next().await {
            match item.map_err(unavailable)?.content {
                Some(Content::Status(s))
                    if s.code != Code::Ok as i32 && s.code != Code::MessageNotFound as i32 =>
                {
                    return Err(leader_refused(s));
                }
                Some(Content::Message(m)) => messages.push(m),
                _ => {}
            }
        }
        Ok(messages)
    }

    /// `AckMessage`: one result per entry.
    pub async fn ack(&self, req: Request<pb::AckMessageRequest>) -> pb::AckMessageResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let checked = async {
            client_id(&md)?;
            let group = group_name(r.group.as_ref())?;
            let topic = self.topic(&topic_name(r.topic.as_ref())).await?;
            if r.entries.is_empty() {
                return Err(BrokerError::bad_request("the ack has no entries"));
            }
            Ok((group, topic.name))
        }
        .await;
        let (group, topic) = match checked {
            Ok(c) => c,
            Err(e) => return pb::AckMessageResponse { status: Some(status(&e)), entries: Vec::new() },
        };
        let mut statuses: Vec<Option<pb::Status>> = vec![None; r.entries.len()];
        let mut by_broker: BTreeMap<GroupId, Vec<(usize, ReceiptHandle)>> = BTreeMap::new();
        for (i, e) in r.entries.iter().enumerate() {
            match ReceiptHandle::parse(&e.receipt_handle) {
                Ok(h) => by_broker.entry(h.group).or_default().push((i, h)),
                Err(err) => statuses[i] = Some(status(&err)),
            }
        }
        let results = futures::future::join_all(by_broker.into_iter().map(|(g, items)| {
            let (group, topic, r, md) = (&group, &topic, &r, &md);
            async move {
                let got = self.ack_at(g, group, topic, &items, r, md).await;
                (items, got)
            }
        }))
        .await;
        for (items, got) in results {
            match got {
                Ok(ss) => {
                    for ((i, h), s) in items.iter().zip(ss) {
                        if s.code == Code::Ok as i32 {
                            self.renewals.release(&group, h);
                        }
                        statuses[*i] = Some(s);
                    }
                }
                Err(e) => {
                    for (i, _) in &items {
                        statuses[*i] = Some(status(&e));
                    }
                }
            }
        }
        let entries: Vec<pb::AckMessageResultEntry> = r
            .entries
            .iter()
            .zip(statuses)
            .map(|(e, s)| pb::AckMessageResultEntry {
                message_id: e.message_id.clone(),
                receipt_handle: e.receipt_handle.clone(),
                status: Some(s.unwrap_or_else(|| status(&BrokerError::Internal("entry not handled".into())))),
            })
            .collect();
        pb::AckMessageResponse {
            status: Some(overall(entries.iter().filter_map(|e| e.status.as_ref()))),
            entries,
        }
    }

    /// Acks `items` (index in `r`, handle) of broker group `g`, here or on its leader.
    async fn ack_at(
        &self,
        g: GroupId,
        group: &str,
        topic: &str,
        items: &[(usize, ReceiptHandle)],
        r: &pb::AckMessageRequest,
        md: &MetadataMap,
    ) -> Result<Vec<pb::Status>, BrokerError> {
        if let Some(b) = self.local_leader(g).cloned() {
            // Messages handed out from the retry topic are acked there.
            let mut by_source: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (n, (_, h)) in items.iter().enumerate() {
                by_source.entry(h.source_topic(group, topic)).or_default().push(n);
            }
            let mut statuses = vec![ok_status(); items.len()];
            for (source, at) in by_source {
                let handles =
                    at.iter().map(|n| (items[*n].1.queue, items[*n].1.offset, items[*n].1.epoch)).collect();
                let results = b.settle(group, &source, AckOp::Ack, handles).await?;
                let now = now_ms();
                for (n, res) in at.into_iter().zip(results) {
                    statuses[n] = ack_status(&items[n].1, res, now);
                }
            }
            return Ok(statuses);
        }
        let sub = pb::AckMessageRequest {
            group: r.group.clone(),
            topic: r.topic.clone(),
            entries: items.iter().map(|(i, _)| r.entries[*i].clone()).collect(),
        };
        let resp = self.forward_unary(g, md, sub, |mut c, q| async move { c.ack_message(q).await }).await?;
        if resp.entries.len() != items.len() {
            return Err(match resp.status {
                Some(s) => leader_refused(s),
                None => BrokerError::Internal("leader answered an ack without entries".into()),
            });
        }
        Ok(resp.entries.into_iter().map(|e| e.status.unwrap_or_else(ok_status)).collect())
    }

    /// `ChangeInvisibleDuration`: the message stays invisible for the new duration from now; the
    /// answer carries the new receipt handle (the old one stops working).
    pub async fn change_invisible(
        &self,
        req: Request<pb::ChangeInvisibleDurationRequest>,
    ) -> pb::ChangeInvisibleDurationResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let renew = md.contains_key(RENEW_HEADER);
        let res = async {
            client_id(&md)?;
            let group = group_name(r.group.as_ref())?;
            let topic = self.topic(&topic_name(r.topic.as_ref())).await?;
            let handle = ReceiptHandle::parse(&r.receipt_handle)?;
            let d = r.invisible_duration.as_ref().ok_or_else(|| BrokerError::BadRequest {
                code: Reason::IllegalInvisibleTime,
                message: "invisible_duration is missing".into(),
            })?;
            // Any time up to the maximum: a push consumer's retry (1 s for an orderly group)
            // may be shorter than the minimum a receive must ask for.
            let ms = millis_of(d);
            if !renew && !(0..=INVISIBLE_MS_MAX).contains(&ms) {
                return Err(BrokerError::BadRequest {
                    code: Reason::IllegalInvisibleTime,
                    message: format!("invisible time {ms} ms is outside 0 - 12 h"),
                });
            }
            self.renewals.release(&group, &handle);
            self.change_invisible_at(&group, &topic.name, handle, ms, renew, &md).await
        }
        .await;
        match res {
            Ok(h) => {
                pb::ChangeInvisibleDurationResponse { status: Some(ok_status()), receipt_handle: h.encode() }
            }
            Err(e) => pb::ChangeInvisibleDurationResponse {
                status: Some(status(&e)),
                receipt_handle: String::new(),
            },
        }
    }

    /// Makes a handed-out message invisible for `ms` from now, here or on its group's leader; with
    /// `renew` the handle keeps working. The new handle.
    pub async fn change_invisible_at(
        &self,
        group: &str,
        topic: &str,
        handle: ReceiptHandle,
        ms: i64,
        renew: bool,
        md: &MetadataMap,
    ) -> Result<ReceiptHandle, BrokerError> {
        let g = handle.group;
        if let Some(b) = self.local_leader(g).cloned() {
            let op = if renew { AckOp::Extend(ms) } else { AckOp::Change(ms) };
            let source = handle.source_topic(group, topic);
            let r = b.settle(group, &source, op, vec![(handle.queue, handle.offset, handle.epoch)]).await?;
            return match r.first() {
                Some(AckResult::Done(Some(f))) => {
                    Ok(ReceiptHandle { epoch: f.epoch, deadline_ms: f.deadline_ms, ..handle })
                }
                Some(res) => {
                    let s = ack_status(&handle, *res, i64::MAX);
                    Err(BrokerError::BadRequest { code: Reason::InvalidReceiptHandle, message: s.message })
                }
                None => Err(BrokerError::Internal("no result".into())),
            };
        }
        let req = pb::ChangeInvisibleDurationRequest {
            group: Some(pb::Resource { resource_namespace: String::new(), name: group.to_string() }),
            topic: Some(pb::Resource { resource_namespace: String::new(), name: topic.to_string() }),
            receipt_handle: handle.encode(),
            invisible_duration: Some(raftmq_proto::prost_types::Duration {
                seconds: ms / 1000,
                nanos: ((ms % 1000) * 1_000_000) as i32,
            }),
            ..Default::default()
        };
        let resp = self
            .forward_unary(g, md, req, |mut c, mut q| async move {
                if renew {
                    q.metadata_mut().insert(RENEW_HEADER, tonic::metadata::MetadataValue::from_static("1"));
                }
                c.change_invisible_duration(q).await
            })
            .await?;
        leader_ok(resp.status)?;
        ReceiptHandle::parse(&resp.receipt_handle)
    }

    /// `QueryAssignment`: what a push consumer of the group receives from: one entry per broker
    /// group holding the topic (queue id -1: any of its queues), or one per queue for an orderly
    /// group.
    pub async fn query_assignment(
        &self,
        req: Request<pb::QueryAssignmentRequest>,
    ) -> pb::QueryAssignmentResponse {
        let md = req.metadata().clone();
        let r = req.into_inner();
        let res = async {
            client_id(&md)?;
            let group = self.consumer_group(&group_name(r.group.as_ref())?).await?;
            let topic = self.topic(&topic_name(r.topic.as_ref())).await?;
            readable(&topic)?;
            let resource = r.topic.clone().unwrap_or_default();
            let queue = |g: GroupId, id: i32| {
                let addr = self.leader(g).map_or_else(|| self.advertise.clone(), |l| l.client_addr);
                pb::Assignment {
                    message_queue: Some(pb::MessageQueue {
                        topic: Some(resource.clone()),
                        id,
                        permission: convert::permission(topic.permission) as i32,
                        broker: Some(pb::Broker {
                            name: g.name(),
                            id: 0,
                            endpoints: Some(convert::endpoints(&addr)),
                        }),
                        accept_message_types: convert::accepted_types(topic.message_type),
                    }),
                }
            };
            let assignments: Vec<pb::Assignment> = if group.fifo {
                topic.queues.iter().map(|q| queue(GroupId(q.group), q.queue_id as i32)).collect()
            } else {
                let mut brokers: Vec<GroupId> = topic.queues.iter().map(|q| GroupId(q.group)).collect();
                brokers.sort();
                brokers.dedup();
                brokers.into_iter().map(|g| queue(g, -1)).collect()
            };
            if assignments.is_empty() {
                return Err(BrokerError::BadRequest {
                    code: Reason::Forbidden,
                    message: format!("topic {:?} has no readable queue", topic.name),
                });
            }
            Ok(assignments)
        }
        .await;
        match res {
            Ok(assignments) => pb::QueryAssignmentResponse { status: Some(ok_status()), assignments },
            Err(e) => pb::QueryAssignmentResponse { status: Some(status(&e)), assignments: Vec::new() },
        }
    }
}

/// The status of one ack (or change of invisible time) of `handle`.
fn ack_status(handle: &ReceiptHandle, res: AckResult, now_ms: i64) -> pb::Status {
    let invalid = |message: String| pb::Status { code: Code::InvalidReceiptHandle as i32, message };
    match res {
        AckResult::Done(_) => ok_status(),
        // Not in flight and the handle still within its time: acked already (a retried ack).
        AckResult::NotInflight if handle.deadline_ms > now_ms => ok_status(),
        AckResult::NotInflight => invalid(format!(
            "queue {} offset {} is not in flight any more: acked already, or its receipt handle expired",
            handle.queue, handle.offset
        )),
        AckResult::Redelivered => invalid(format!(
            "queue {} offset {} was delivered again (or its invisible time changed) since this receipt handle was issued",
            handle.queue, handle.offset
        )),
    }
}

/// The top-level status of a multi-entry answer: the common one, or MULTIPLE_RESULTS.
fn overall<'a>(mut statuses: impl Iterator<Item = &'a pb::Status>) -> pb::Status {
    let Some(first) = statuses.next() else { return ok_status() };
    if statuses.all(|s| s.code == first.code) {
        first.clone()
    } else {
        pb::Status { code: Code::MultipleResults as i32, message: "entries have different results".into() }
    }
}
