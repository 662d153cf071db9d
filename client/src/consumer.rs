//! [`PullConsumer`]: reads queues by offset and commits its progress to the broker.

use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;

use crate::error::ClientError;
use crate::error::check;
use crate::message::MessageView;
use crate::message::new_message_id;
use crate::rebalance::Membership;
use crate::rebalance::Strategy;
use crate::rebalance::assign;
use crate::routes::Routes;
use crate::simple::Subscription;
use crate::wire::duration;
use crate::wire::queue;
use crate::wire::resource;

/// Where to start reading a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetPolicy {
    /// The oldest stored message.
    Beginning,
    /// After the newest message.
    End,
    /// The first message stored at or after this time, ms since the epoch.
    Timestamp(i64),
}

/// What a pull found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// Messages, in offset order.
    pub messages: Vec<MessageView>,
    /// Offset to pull from next.
    pub next_offset: u64,
}

/// Pull consumer settings.
#[derive(Debug, Clone)]
pub struct PullConsumerOptions {
    /// Access points, `host:port[,...]`.
    pub endpoints: String,
    /// Consumer group (offsets are kept per group).
    pub group: String,
    /// Deadline of a request (long polls get their wait on top).
    pub request_timeout: Duration,
}

impl PullConsumerOptions {
    /// Defaults for `group` on a cluster reachable at `endpoints`.
    pub fn new(endpoints: impl Into<String>, group: impl Into<String>) -> Self {
        Self { endpoints: endpoints.into(), group: group.into(), request_timeout: Duration::from_secs(3) }
    }
}

/// Reads queues by offset. Cheap to clone.
#[derive(Clone)]
pub struct PullConsumer {
    routes: Arc<Routes>,
    group: String,
    client_id: Arc<String>,
}

/// The queues of one topic this consumer owns in its group, kept current by heartbeats: see
/// [`crate::rebalance`]. Leaves the group when dropped.
pub struct Assignment {
    consumer: PullConsumer,
    topic: String,
    strategy: Strategy,
    membership: Membership,
    members: tokio::sync::watch::Receiver<Vec<String>>,
}

impl Assignment {
    /// The queues this consumer owns now, sorted.
    pub async fn queues(&self) -> Result<Vec<u32>, ClientError> {
        let all = self.consumer.queues(&self.topic).await?;
        let members = self.members.borrow().clone();
        Ok(assign(self.strategy, &self.consumer.client_id, &members, &all))
    }

    /// The group's live members as last heard.
    pub fn members(&self) -> Vec<String> {
        self.members.borrow().clone()
    }

    /// Waits until the group's membership changes (then call [`Assignment::queues`] again).
    pub async fn changed(&mut self) {
        if self.members.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Leaves the group at once; the other members take over this consumer's queues.
    pub async fn leave(self) {
        self.membership.leave().await;
    }
}

impl PullConsumer {
    /// A consumer; it connects lazily.
    pub fn new(opts: PullConsumerOptions) -> Result<Self, ClientError> {
        let client_id = format!("raftmq-pull@{}@{}", std::process::id(), new_message_id());
        let routes = Arc::new(Routes::new(&opts.endpoints, &client_id, opts.request_timeout)?);
        Ok(Self { routes, group: opts.group, client_id: Arc::new(client_id) })
    }

    /// This consumer's id in its group.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Joins the group to read `topic` with the queues `strategy` gives this consumer: they
    /// change as members join and leave (watch [`Assignment::changed`]). Offsets are the
    /// group's, so a queue taken over continues where its last owner committed.
    pub async fn subscribe(&self, topic: &str, strategy: Strategy) -> Result<Assignment, ClientError> {
        let membership = Membership::join(self.routes.access(), &self.group, &self.client_id).await?;
        let members = membership.members();
        Ok(Assignment { consumer: self.clone(), topic: topic.to_string(), strategy, membership, members })
    }

    /// Where to continue reading a queue: the group's committed offset, else `policy`.
    pub async fn seek_committed(
        &self,
        topic: &str,
        id: u32,
        policy: OffsetPolicy,
    ) -> Result<u64, ClientError> {
        match self.committed(topic, id).await? {
            Some(o) => Ok(o),
            None => self.query_offset(topic, id, policy).await,
        }
    }

    fn group(&self) -> Option<pb::Resource> {
        resource(&self.group)
    }

    /// The readable queues of `topic`.
    pub async fn queues(&self, topic: &str) -> Result<Vec<u32>, ClientError> {
        Ok(self.routes.queues(topic).await?.iter().filter(|q| q.readable).map(|q| q.id).collect())
    }

    /// Runs `call` against the queue's leader (see [`Routes::call_leader`]: up to 3 tries).
    async fn on_queue<T, F, Fut>(&self, topic: &str, id: u32, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(crate::routes::Client, pb::MessageQueue) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let missing = || ClientError::InvalidArgument(format!("topic {topic} has no queue {id}"));
        self.routes
            .call_leader(
                topic,
                3,
                |q| q.id == id,
                missing,
                |c, q| call(c, queue(topic, q.id as i32, &q.group)),
            )
            .await
    }

    /// Pulls up to `max` messages from `offset`, waiting up to `wait` for the first.
    pub async fn pull(
        &self,
        topic: &str,
        id: u32,
        offset: u64,
        max: u32,
        wait: Duration,
    ) -> Result<Pulled, ClientError> {
        self.pull_filtered(topic, id, offset, max, wait, &Subscription::All).await
    }

    /// Pulls like [`pull`](Self::pull), only messages that pass `filter` (the broker filters;
    /// `next_offset` moves past the skipped ones).
    pub async fn pull_filtered(
        &self,
        topic: &str,
        id: u32,
        offset: u64,
        max: u32,
        wait: Duration,
        filter: &Subscription,
    ) -> Result<Pulled, ClientError> {
        let filter = filter.to_wire();
        let timeout = self.routes.timeout + wait;
        let group = self.group();
        let mut stream = self
            .on_queue(topic, id, |mut c, q| {
                let mut req = tonic::Request::new(pb::PullMessageRequest {
                    group: group.clone(),
                    message_queue: Some(q),
                    offset: offset as i64,
                    batch_size: max as i32,
                    filter_expression: Some(filter.clone()),
                    long_polling_timeout: Some(duration(wait)),
                });
                req.set_timeout(timeout);
                async move { c.pull_message(req).await }
            })
            .await?;
        let mut messages = Vec::new();
        let mut next = offset;
        let mut status = None;
        while let Some(item) = stream.message().await? {
            use pb::pull_message_response::Content;
            match item.content {
                Some(Content::Status(s)) => status = Some(s),
                Some(Content::Message(m)) => {
                    if let Some(v) = MessageView::from_wire(m) {
                        messages.push(v);
                    }
                }
                Some(Content::NextOffset(n)) => next = n.max(0) as u64,
                None => {}
            }
        }
        match status.as_ref().map(|s| Code::try_from(s.code).unwrap_or(Code::Unspecified)) {
            Some(Code::Ok) | Some(Code::MessageNotFound) => Ok(Pulled { messages, next_offset: next }),
            _ => {
                check(status.as_ref())?;
                Ok(Pulled { messages, next_offset: next })
            }
        }
    }

    /// Commits `offset` (the next offset to consume) of this group on a queue.
    pub async fn commit(&self, topic: &str, id: u32, offset: u64) -> Result<(), ClientError> {
        let group = self.group();
        let r = self
            .on_queue(topic, id, |mut c, q| {
                let req = self.routes.request(pb::UpdateOffsetRequest {
                    group: group.clone(),
                    message_queue: Some(q),
                    offset: offset as i64,
                });
                async move { c.update_offset(req).await }
            })
            .await?;
        check(r.status.as_ref())
    }

    /// The committed offset of this group on a queue, if any.
    pub async fn committed(&self, topic: &str, id: u32) -> Result<Option<u64>, ClientError> {
        let group = self.group();
        let r = self
            .on_queue(topic, id, |mut c, q| {
                let req = self
                    .routes
                    .request(pb::GetOffsetRequest { group: group.clone(), message_queue: Some(q) });
                async move { c.get_offset(req).await }
            })
            .await?;
        match check(r.status.as_ref()) {
            Ok(()) => Ok(Some(r.offset.max(0) as u64)),
            Err(e) if e.code() == Some(Code::OffsetNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An offset of a queue by policy.
    pub async fn query_offset(&self, topic: &str, id: u32, policy: OffsetPolicy) -> Result<u64, ClientError> {
        let (p, ts) = match policy {
            OffsetPolicy::Beginning => (pb::QueryOffsetPolicy::Beginning, None),
            OffsetPolicy::End => (pb::QueryOffsetPolicy::End, None),
            OffsetPolicy::Timestamp(ms) => (
                pb::QueryOffsetPolicy::Timestamp,
                Some(prost_types::Timestamp {
                    seconds: ms.div_euclid(1000),
                    nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
                }),
            ),
        };
        let r = self
            .on_queue(topic, id, |mut c, q| {
                let req = self.routes.request(pb::QueryOffsetRequest {
                    message_queue: Some(q),
                    query_offset_policy: p as i32,
                    timestamp: ts,
                });
                async move { c.query_offset(req).await }
            })
            .await?;
        check(r.status.as_ref())?;
        Ok(r.offset.max(0) as u64)
    }
}
