//! [`SimpleConsumer`]: receives messages that stay invisible to the rest of the group until
//! acked, and come back (with the delivery attempt raised) when they are not acked in time.
//!
//! The state of every received message lives in the broker group's Raft log, so an ack is never
//! lost by a leader change and an acked message is never delivered to the group again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;

use crate::error::ClientError;
use crate::error::check;
use crate::message::MessageView;
use crate::message::new_message_id;
use crate::routes::Routes;
use crate::wire::duration;
use crate::wire::resource;

/// What a consumer subscribes to on one topic. The broker filters, so only matching messages
/// cross the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Every message.
    All,
    /// Messages whose tag is one of `a||b||c` (`*` for all).
    Tags(String),
    /// Messages whose properties satisfy an SQL92 expression, e.g.
    /// `region = 'Hangzhou' AND price > 30` (`TAGS` is the tag). A bad expression is refused by
    /// the broker with ILLEGAL_FILTER_EXPRESSION and a message pointing at the error.
    Sql(String),
}

impl Subscription {
    pub(crate) fn to_wire(&self) -> pb::FilterExpression {
        let (r#type, expression) = match self {
            Subscription::All => (pb::FilterType::Tag, "*".to_string()),
            Subscription::Tags(t) => (pb::FilterType::Tag, t.clone()),
            Subscription::Sql(e) => (pb::FilterType::Sql, e.clone()),
        };
        pb::FilterExpression { r#type: r#type as i32, expression }
    }
}

/// Simple consumer settings.
#[derive(Debug, Clone)]
pub struct SimpleConsumerOptions {
    /// Access points, `host:port[,...]`.
    pub endpoints: String,
    /// Consumer group (must be CLUSTERING; created on first use when the cluster allows it).
    pub group: String,
    /// Longest a receive waits for a message (long polling).
    pub await_duration: Duration,
    /// Deadline of a request that does not wait (ack, change invisible duration).
    pub request_timeout: Duration,
}

impl SimpleConsumerOptions {
    /// Defaults for `group` on a cluster reachable at `endpoints`: receives wait up to 20 s.
    pub fn new(endpoints: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            endpoints: endpoints.into(),
            group: group.into(),
            await_duration: Duration::from_secs(20),
            request_timeout: Duration::from_secs(3),
        }
    }
}

/// A received message and the handle that acks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message.
    pub message: MessageView,
    /// Names this delivery; replaced by [`SimpleConsumer::change_invisible_duration`].
    pub receipt_handle: String,
    /// Broker group that delivered it (acks go to its leader).
    pub broker: String,
}

/// Receives, acks and postpones messages. Cheap to clone; share one per application.
#[derive(Clone)]
pub struct SimpleConsumer {
    routes: Arc<Routes>,
    opts: Arc<SimpleConsumerOptions>,
    subs: Arc<RwLock<BTreeMap<String, Subscription>>>,
    rr: Arc<AtomicUsize>,
}

impl SimpleConsumer {
    /// A consumer; it connects lazily.
    pub fn new(opts: SimpleConsumerOptions) -> Result<Self, ClientError> {
        if opts.group.is_empty() {
            return Err(ClientError::InvalidArgument("group is empty: name the consumer group".into()));
        }
        let client_id = format!("raftmq-simple@{}@{}", std::process::id(), new_message_id());
        let routes = Arc::new(Routes::new(&opts.endpoints, &client_id, opts.request_timeout)?);
        Ok(Self { routes, opts: Arc::new(opts), subs: Arc::default(), rr: Arc::default() })
    }

    /// Subscribes to `topic` (replacing an earlier subscription to it).
    pub fn subscribe(&self, topic: impl Into<String>, sub: Subscription) {
        self.subs.write().unwrap_or_else(|e| e.into_inner()).insert(topic.into(), sub);
    }

    /// Stops receiving from `topic`.
    pub fn unsubscribe(&self, topic: &str) {
        self.subs.write().unwrap_or_else(|e| e.into_inner()).remove(topic);
    }

    /// Receives up to `max` messages, waiting up to the await duration for the first. Each stays
    /// invisible to the group for `invisible`; ack it before then, or it is delivered again.
    /// Topics and broker groups are taken in turn, so one busy queue does not starve the rest.
    pub async fn receive(&self, max: u32, invisible: Duration) -> Result<Vec<Received>, ClientError> {
        let subs: Vec<(String, Subscription)> = self
            .subs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        if subs.is_empty() {
            return Err(ClientError::InvalidArgument("subscribe to a topic before receiving".into()));
        }
        let turn = self.rr.fetch_add(1, Ordering::Relaxed);
        let (topic, sub) = &subs[turn % subs.len()];
        let brokers = self.routes.readable_brokers(topic).await?;
        if brokers.is_empty() {
            return Err(ClientError::Status {
                code: Code::Forbidden,
                message: format!("topic {topic} has no readable queue"),
            });
        }
        let broker = brokers[(turn / subs.len()) % brokers.len()].clone();
        self.receive_from_broker(topic, &broker, sub, max, invisible).await
    }

    pub(crate) fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Receives from one broker group of `topic` (the push consumer's receivers).
    pub(crate) async fn receive_from_broker(
        &self,
        topic: &str,
        broker: &str,
        sub: &Subscription,
        max: u32,
        invisible: Duration,
    ) -> Result<Vec<Received>, ClientError> {
        let queues = self.routes.queues(topic).await?;
        let Some(q) = queues.iter().find(|q| q.group == broker) else {
            return Err(ClientError::InvalidArgument(format!(
                "topic {topic} has no queue on broker {broker}"
            )));
        };
        let addr = self.routes.addr_of(q);
        receive_from(
            &self.routes,
            &addr,
            &self.opts.group,
            topic,
            broker,
            -1,
            sub,
            max,
            invisible,
            self.opts.await_duration,
        )
        .await
        .inspect_err(|e| {
            if matches!(e, ClientError::Transport(_)) {
                self.routes.forget_leader(broker);
                self.routes.invalidate(topic);
            }
        })
    }

    /// Acks a received message: it is never delivered to this group again.
    pub async fn ack(&self, r: &Received) -> Result<(), ClientError> {
        let req = pb::AckMessageRequest {
            group: resource(&self.opts.group),
            topic: resource(&r.message.topic),
            entries: vec![pb::AckMessageEntry {
                message_id: r.message.message_id.clone(),
                receipt_handle: r.receipt_handle.clone(),
                ..Default::default()
            }],
        };
        let resp = self
            .on_broker(&r.broker, &r.message.topic, |mut c| {
                let req = self.routes.request(req.clone());
                async move { c.ack_message(req).await }
            })
            .await?;
        check(resp.status.as_ref())?;
        match resp.entries.first() {
            Some(e) => check(e.status.as_ref()),
            None => Ok(()),
        }
    }

    /// Gives up on a received message: it moves to the group's dead-letter topic
    /// (`%DLQ%<group>`) now, with its original topic and retry count in its properties, and is
    /// never delivered to the group again. The broker also does this by itself when a message
    /// comes due after its last allowed delivery.
    pub async fn dead_letter(&self, r: &Received) -> Result<(), ClientError> {
        let req = pb::ForwardMessageToDeadLetterQueueRequest {
            group: resource(&self.opts.group),
            topic: resource(&r.message.topic),
            receipt_handle: r.receipt_handle.clone(),
            message_id: r.message.message_id.clone(),
            delivery_attempt: r.message.delivery_attempt as i32,
            ..Default::default()
        };
        let resp = self
            .on_broker(&r.broker, &r.message.topic, |mut c| {
                let req = self.routes.request(req.clone());
                async move { c.forward_message_to_dead_letter_queue(req).await }
            })
            .await?;
        check(resp.status.as_ref())
    }

    /// Makes a received message invisible for `invisible` from now (shorter to have it
    /// redelivered sooner, longer to keep working on it). Returns the message with its new
    /// receipt handle; the old one no longer acks it.
    pub async fn change_invisible_duration(
        &self,
        r: &Received,
        invisible: Duration,
    ) -> Result<Received, ClientError> {
        let req = pb::ChangeInvisibleDurationRequest {
            group: resource(&self.opts.group),
            topic: resource(&r.message.topic),
            receipt_handle: r.receipt_handle.clone(),
            invisible_duration: Some(duration(invisible)),
            message_id: r.message.message_id.clone(),
            ..Default::default()
        };
        let resp = self
            .on_broker(&r.broker, &r.message.topic, |mut c| {
                let req = self.routes.request(req.clone());
                async move { c.change_invisible_duration(req).await }
            })
            .await?;
        check(resp.status.as_ref())?;
        Ok(Received { receipt_handle: resp.receipt_handle, ..r.clone() })
    }

    /// Runs `call` on `broker`'s leader (see [`Routes::call_leader`]: up to 3 tries).
    async fn on_broker<T, F, Fut>(&self, broker: &str, topic: &str, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(crate::routes::Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let missing =
            || ClientError::InvalidArgument(format!("topic {topic} has no queue on broker {broker}"));
        self.routes.call_leader(topic, 3, |q| q.group == broker, missing, |c, _| call(c)).await
    }
}

/// One `ReceiveMessage` call to `addr` for `broker` (queue `queue`, or -1 for the whole broker),
/// collected into messages with their handles. An empty answer (MESSAGE_NOT_FOUND) is `Ok(vec![])`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn receive_from(
    routes: &Routes,
    addr: &str,
    group: &str,
    topic: &str,
    broker: &str,
    queue: i32,
    sub: &Subscription,
    max: u32,
    invisible: Duration,
    wait: Duration,
) -> Result<Vec<Received>, ClientError> {
    let mut req = tonic::Request::new(pb::ReceiveMessageRequest {
        group: resource(group),
        message_queue: Some(crate::wire::queue(topic, queue, broker)),
        filter_expression: Some(sub.to_wire()),
        batch_size: max.clamp(1, 1024) as i32,
        invisible_duration: Some(duration(invisible)),
        auto_renew: false,
        long_polling_timeout: Some(duration(wait)),
        attempt_id: None,
    });
    req.set_timeout(routes.timeout + wait);
    let resp = routes.client(addr)?.receive_message(req).await?;
    routes.learn(resp.metadata());
    let mut stream = resp.into_inner();
    let mut out = Vec::new();
    let mut status = None;
    while let Some(item) = stream.message().await? {
        use pb::receive_message_response::Content;
        match item.content {
            Some(Content::Status(s)) => status = Some(s),
            Some(Content::Message(m)) => {
                let handle =
                    m.system_properties.as_ref().and_then(|s| s.receipt_handle.clone()).unwrap_or_default();
                if let Some(v) = MessageView::from_wire(m) {
                    out.push(Received { message: v, receipt_handle: handle, broker: broker.to_string() });
                }
            }
            _ => {}
        }
    }
    match status.as_ref().map(|s| Code::try_from(s.code).unwrap_or(Code::Unspecified)) {
        Some(Code::MessageNotFound) => Ok(out),
        _ => {
            check(status.as_ref())?;
            Ok(out)
        }
    }
}
