//! `SendMessage`: validate, pick queues, append to local broker groups (one Raft entry per batch)
//! or forward to the leader of a group this node does not lead.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use raftmq_client::trace;
use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::Code;
use raftmq_storage::GroupId;
use raftmq_storage::broker::record::NewMessage;
use raftmq_storage::broker::record::StoredType;
use raftmq_storage::nameserver::Permission;
use tonic::Request;
use tonic::metadata::MetadataMap;
use tracing::Instrument;

use super::context::Context;
use super::context::deadline_left;
use super::context::leader_silent;
use super::status::ok_status;
use super::status::status;
use crate::broker::batcher::Appended;
use crate::broker::send::Draft;
use crate::broker::send::encoding;
use crate::error::BrokerError;
use crate::error::Reason;
use crate::forward::forwarded;

/// The core's draft of a wire message (the broker checks it: `BrokerService::prepare`).
fn draft(m: &pb::Message) -> Result<Draft, BrokerError> {
    let sys = m
        .system_properties
        .as_ref()
        .ok_or_else(|| BrokerError::bad_request("message has no system_properties"))?;
    Ok(Draft {
        message_id: sys.message_id.clone(),
        body: m.body.clone(),
        body_encoding: if sys.body_encoding == pb::Encoding::Gzip as i32 {
            encoding::GZIP
        } else {
            encoding::IDENTITY
        },
        tag: sys.tag.clone(),
        keys: sys.keys.clone(),
        message_group: sys.message_group.clone(),
        transaction: sys.message_type == pb::MessageType::Transaction as i32,
        delivery_ms: sys.delivery_timestamp.as_ref().map(super::convert::millis),
        born_ms: sys.born_timestamp.as_ref().map(super::convert::millis),
        born_host: sys.born_host.clone(),
        trace_context: sys.trace_context.clone(),
        properties: m.user_properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    })
}

fn entry(status: pb::Status, message_id: &str, offset: i64) -> pb::SendResultEntry {
    pb::SendResultEntry {
        status: Some(status),
        message_id: message_id.to_string(),
        transaction_id: String::new(),
        offset,
        recall_handle: String::new(),
    }
}

impl Context {
    /// Serves a `SendMessage`: one result entry per message, in request order. Also returns the
    /// groups the messages went to, for the leader header.
    ///
    /// The work runs in a `SendMessage` span (target [`raftmq_client::trace::TARGET`]) under the
    /// caller's trace: the `traceparent` header, else the first message's trace context.
    pub async fn send(
        &self,
        req: Request<pb::SendMessageRequest>,
    ) -> (pb::SendMessageResponse, Vec<GroupId>) {
        let md = req.metadata().clone();
        let req = req.into_inner();
        let span = tracing::info_span!(
            target: trace::TARGET,
            "SendMessage",
            otel.kind = "server",
            node.id = self.node_id,
            messages = req.messages.len(),
            forwarded = crate::forward::is_forwarded(&md),
        );
        // Only when spans are exported: otherwise the span is disabled and nothing reads it.
        if !span.is_disabled() {
            let parent = md.get(trace::TRACEPARENT).and_then(|v| v.to_str().ok()).or_else(|| {
                req.messages
                    .first()
                    .and_then(|m| m.system_properties.as_ref())
                    .and_then(|s| s.trace_context.as_deref())
            });
            if let Some(p) = parent {
                trace::set_parent(&span, p);
            }
        }
        self.send_traced(md, req).instrument(span).await
    }

    async fn send_traced(
        &self,
        md: MetadataMap,
        req: pb::SendMessageRequest,
    ) -> (pb::SendMessageResponse, Vec<GroupId>) {
        let fail = |e: BrokerError| {
            (pb::SendMessageResponse { status: Some(status(&e)), entries: Vec::new() }, Vec::new())
        };
        let Some(first) = req.messages.first() else {
            return fail(BrokerError::bad_request("SendMessage carries no message"));
        };
        let topic_name = first.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        if req.messages.iter().any(|m| m.topic.as_ref().map(|t| t.name.as_str()) != Some(topic_name.as_str()))
        {
            return fail(BrokerError::bad_request(
                "all messages of one SendMessage must have the same topic",
            ));
        }
        let topic = match self.producer_topic(&topic_name).await {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        if topic.permission == Permission::Read {
            return fail(BrokerError::invalid(
                Reason::Forbidden,
                format!("topic {topic_name:?} is read-only"),
            ));
        }
        let forwarded = crate::forward::is_forwarded(&md);
        let local = self.local_queues(&topic);
        let mut results: Vec<Option<pb::SendResultEntry>> = vec![None; req.messages.len()];
        // Messages by target group: (index in request, message, queue).
        let mut by_group: BTreeMap<GroupId, Vec<(usize, NewMessage)>> = BTreeMap::new();
        for (i, m) in req.messages.iter().enumerate() {
            let id = m.system_properties.as_ref().map(|s| s.message_id.as_str()).unwrap_or_default();
            match draft(m).and_then(|d| self.prepare(&topic, d, true)) {
                Ok(mut nm) => {
                    // A forwarded message keeps the queue the first node chose.
                    let chosen =
                        m.system_properties.as_ref().filter(|_| forwarded).map(|s| s.queue_id as u32);
                    let queue = self.pick_queue(&topic, &local, &nm, chosen);
                    nm.queue_id = queue;
                    let g = GroupId(topic.queues[queue as usize].group);
                    by_group.entry(g).or_default().push((i, nm));
                }
                Err(e) => results[i] = Some(entry(status(&e), id, -1)),
            }
        }
        let groups: Vec<GroupId> = by_group.keys().copied().collect();
        let sends = by_group.into_iter().map(|(g, msgs)| self.send_to_group(g, msgs, &md));
        for part in join_all(sends).await {
            for (i, e) in part {
                results[i] = Some(e);
            }
        }
        let entries: Vec<pb::SendResultEntry> = results.into_iter().map(|e| e.unwrap_or_default()).collect();
        let codes: Vec<i32> = entries.iter().map(|e| e.status.as_ref().map_or(0, |s| s.code)).collect();
        let status = if codes.iter().all(|c| *c == codes[0]) {
            entries[0].status.clone().unwrap_or_else(ok_status)
        } else {
            pb::Status {
                code: Code::MultipleResults as i32,
                message: "messages had different results".into(),
            }
        };
        (pb::SendMessageResponse { status: Some(status), entries }, groups)
    }

    /// Appends `msgs` to group `g` here if this node leads it, else forwards them to its leader.
    /// When the leader is gone for sure — its node refused the connection, so the send never
    /// reached it, or no leader is known — the send waits for the next leader within the caller's
    /// deadline and goes there: a failover then costs the producer time, not an error. A send
    /// another node forwarded here is not held: that node waits.
    async fn send_to_group(
        &self,
        g: GroupId,
        msgs: Vec<(usize, NewMessage)>,
        md: &MetadataMap,
    ) -> Vec<(usize, pb::SendResultEntry)> {
        let now = tokio::time::Instant::now();
        let deadline = now + deadline_left(md).unwrap_or(FORWARD_TIMEOUT);
        let until = (now + FAILOVER_WAIT_MAX).min(deadline).checked_sub(DEADLINE_MARGIN).unwrap_or(now);
        let mut waited = crate::forward::is_forwarded(md);
        loop {
            if let Some(b) = self.local_leader(g) {
                let meta: Vec<(usize, String, StoredType)> =
                    msgs.iter().map(|(i, m)| (*i, m.message_id.clone(), m.message_type)).collect();
                let appended = b.append_local(msgs.into_iter().map(|(_, m)| m).collect()).await;
                return append_entries(g, appended, &meta);
            }
            match self.forward_send(g, &msgs, md, deadline).await {
                Forwarded::Answered(entries) => return entries,
                Forwarded::LeaderGone { gone, error } => {
                    if waited
                        || !self.await_leader(g, gone, until).await
                        || tokio::time::Instant::now() >= until
                    {
                        return fail_all(&msgs, &error);
                    }
                    tracing::debug!(group = %g, gone = ?gone, "leader changed while forwarding; sending again");
                    waited = true;
                }
            }
        }
    }

    /// Forwards `msgs` to the leader of `g`, to be answered by `deadline`.
    async fn forward_send(
        &self,
        g: GroupId,
        msgs: &[(usize, NewMessage)],
        md: &MetadataMap,
        deadline: tokio::time::Instant,
    ) -> Forwarded {
        let target = match self.forward_target(g, super::context::forwarded_here(md)) {
            Ok(t) => t,
            // No leader, or only this node as recorded leader (it stepped down).
            Err(error) if self.leader(g).filter(|l| l.node != self.node_id).is_none() => {
                return Forwarded::LeaderGone { gone: None, error };
            }
            Err(e) => return Forwarded::Answered(fail_all(msgs, &e)),
        };
        let mut client = match self.client(&target.client_addr) {
            Ok(c) => c,
            Err(e) => return Forwarded::Answered(fail_all(msgs, &e)),
        };
        let wire: Vec<pb::Message> = msgs.iter().map(|(_, m)| to_wire(m)).collect();
        let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        let span = tracing::info_span!(target: trace::TARGET, "forward", otel.kind = "client", group = %g, leader = target.node);
        let mut fwd = forwarded(pb::SendMessageRequest { messages: wire }, md, self.node_id, timeout);
        if let Some(tp) = trace::traceparent(&span)
            && let Ok(v) = tp.parse()
        {
            fwd.metadata_mut().insert(trace::TRACEPARENT, v);
        }
        match client.send_message(fwd).instrument(span).await {
            Ok(r) => {
                let r = r.into_inner();
                if r.entries.len() != msgs.len() {
                    let e = BrokerError::Internal(format!(
                        "leader node {} answered {} entries for {}",
                        target.node,
                        r.entries.len(),
                        msgs.len()
                    ));
                    return Forwarded::Answered(fail_all(msgs, &e));
                }
                Forwarded::Answered(msgs.iter().map(|(i, _)| *i).zip(r.entries).collect())
            }
            Err(s) => {
                tracing::warn!(group = %g, leader = target.node, error = %s, "forwarding send failed");
                let error = leader_silent(target.node, &g, &s);
                // Only a connection that was never made proves the leader did not get the send;
                // a broken connection or a passed deadline says nothing sure (it may be stored)
                // and is answered as it is.
                if never_connected(&s) {
                    Forwarded::LeaderGone { gone: Some(target.node), error }
                } else {
                    Forwarded::Answered(fail_all(msgs, &error))
                }
            }
        }
    }
}

/// Whether a forward failed before any connection to the leader was made (tonic reports a
/// connector error as UNAVAILABLE with the connector's message), so nothing reached it.
fn never_connected(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Unavailable && s.message().starts_with("tcp connect error")
}

/// How long a forward may take when the caller gave no deadline.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a send waits for a new leader of its group.
const FAILOVER_WAIT_MAX: Duration = Duration::from_secs(5);
/// Time kept back from the caller's deadline for the append once a leader is there.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// How a forward ended.
enum Forwarded {
    /// The leader answered, or the send failed for good: one entry per message.
    Answered(Vec<(usize, pb::SendResultEntry)>),
    /// The group's leader (`gone`, if one was known) did not take the send; it may be tried
    /// again at the next leader.
    LeaderGone { gone: Option<u64>, error: BrokerError },
}

/// The result entries of an append to group `g`: one per message, `meta` saying its index in
/// the request, its id and its type.
fn append_entries(
    g: GroupId,
    appended: Result<Vec<Appended>, BrokerError>,
    meta: &[(usize, String, StoredType)],
) -> Vec<(usize, pb::SendResultEntry)> {
    let appended = match appended {
        Ok(a) => a,
        Err(e) => return meta.iter().map(|(i, id, _)| (*i, entry(status(&e), id, -1))).collect(),
    };
    meta.iter()
        .zip(appended)
        .map(|((i, id, t), a)| {
            let mut e = entry(ok_status(), id, a.offset as i64);
            match t {
                StoredType::Transaction => e.transaction_id = super::transaction::locator(g, id),
                StoredType::Delay => e.recall_handle = super::transaction::locator(g, id),
                _ => {}
            }
            (*i, e)
        })
        .collect()
}

/// The same failure for every message.
fn fail_all(msgs: &[(usize, NewMessage)], e: &BrokerError) -> Vec<(usize, pb::SendResultEntry)> {
    msgs.iter().map(|(i, m)| (*i, entry(status(e), &m.message_id, -1))).collect()
}

/// A checked message back on the wire, with its chosen queue, for forwarding.
fn to_wire(m: &NewMessage) -> pb::Message {
    pb::Message {
        topic: Some(pb::Resource { resource_namespace: String::new(), name: m.topic.clone() }),
        user_properties: m.properties.iter().cloned().collect(),
        system_properties: Some(pb::SystemProperties {
            tag: m.tag.clone(),
            keys: m.keys.clone(),
            message_id: m.message_id.clone(),
            body_encoding: i32::from(m.body_encoding),
            message_type: super::convert::message_type(m.message_type) as i32,
            born_timestamp: Some(super::convert::timestamp(m.born_ms)),
            born_host: m.born_host.clone(),
            delivery_timestamp: m.delivery_ms.map(super::convert::timestamp),
            queue_id: m.queue_id as i32,
            message_group: m.message_group.clone(),
            trace_context: m.trace_context.clone(),
            ..Default::default()
        }),
        body: Bytes::clone(&m.body),
    }
}

#[cfg(test)]
mod tests {
    use raftmq_proto::rocketmq::messaging_service_client::MessagingServiceClient;

    use super::*;

    /// The string `never_connected` looks for is what tonic really reports for a refused
    /// connection, and not for other failures.
    #[tokio::test]
    async fn a_refused_connection_is_told_apart() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").map(|l| l.local_addr().map(|a| a.port()));
        let port = port.expect("bind").expect("port");
        // The listener is dropped: nothing listens on the port now.
        let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect_lazy();
        let s = MessagingServiceClient::new(ch)
            .send_message(pb::SendMessageRequest { messages: Vec::new() })
            .await
            .expect_err("nothing listens");
        assert!(never_connected(&s), "{s:?}");
        assert!(!never_connected(&tonic::Status::unavailable("connection reset")));
        assert!(!never_connected(&tonic::Status::cancelled("Timeout expired")));
    }
}
