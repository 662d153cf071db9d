//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320): the 4.x producer's
//! message into the same checks, queue and append as a gRPC send (`broker::send`), answered with
//! the 4.x send result (offset message id, queue, queue offset).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use raftmq_client::message::new_message_id;
use raftmq_storage::GroupId;
use raftmq_storage::broker::record::NewMessage;
use raftmq_storage::nameserver::Permission;
use raftmq_storage::nameserver::Topic;
use raftmq_storage::nameserver::names;

use super::codec::Command;
use super::codes::request as code;
use super::context::Remoting;
use super::convert::Sent;
use super::convert::draft;
use super::header::Header;
use super::message::decode_batch;
use super::message::offset_msg_id;
use super::queues::local_id;
use super::status;
use crate::broker::location::Location;
use crate::clock::now_ms;
use crate::error::BrokerError;
use crate::error::Reason;

/// How long a forwarded send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A send, checked: the topic, where it goes, and its messages.
struct Parsed {
    topic: Topic,
    group: GroupId,
    queue: u32,
    msgs: Vec<NewMessage>,
}

impl Remoting {
    /// Serves a send from `peer`.
    pub async fn send(&self, peer: SocketAddr, req: Command) -> Command {
        let (topic, group, queue, dead) = match self.send_target(&req).await {
            Ok(t) => t,
            Err(e) => return status::error(&req, &e),
        };
        if self.local_leader(group).is_none() {
            return self.forward(group, peer, req, SEND_TIMEOUT).await;
        }
        let parsed = match self.send_messages(&req, peer, topic, (group, queue), dead) {
            Ok(p) => p,
            Err(e) => return status::error(&req, &e),
        };
        let Some(b) = self.local_leader(parsed.group).cloned() else {
            return self.forward(parsed.group, peer, req, SEND_TIMEOUT).await;
        };
        let local_queue = local_id(&parsed.topic, parsed.queue);
        let appended = match b.append_local(parsed.msgs).await {
            Ok(a) => a,
            Err(e) => return status::error(&req, &e),
        };
        let ids: Vec<String> = appended
            .iter()
            .map(|a| {
                let loc = Location { group: parsed.group, log_index: a.log_index, ordinal: a.ordinal };
                offset_msg_id(self.store_host, loc.encode().unwrap_or(-1))
            })
            .collect();
        // A half or delayed message has no queue offset until it is committed or due (the core
        // answers u64::MAX); 4.x clients parse a signed long, so they get 0 then.
        let first = appended.first().map_or(0, |a| i64::try_from(a.offset).unwrap_or(0));
        status::ok(&req)
            .with("msgId", ids.join(","))
            .with("queueId", local_queue)
            .with("queueOffset", first)
            .with("MSG_REGION", "DefaultRegion")
            .with("TRACE_ON", "true")
    }

    /// The topic, broker group and queue a send goes to, and whether it is a dead letter: a
    /// consumer sends a failed message to its retry topic itself when CONSUMER_SEND_MSG_BACK
    /// failed, and the group's last attempt sends it to the dead-letter topic, as a send-back
    /// would.
    async fn send_target(&self, req: &Command) -> Result<(Topic, GroupId, u32, bool), BrokerError> {
        let h = Header::of(req, req.code != code::SEND_MESSAGE);
        let mut name = h.str("topic")?.to_string();
        let mut queue = h.i32("queueId")?;
        let mut dead = false;
        if let Some(group) = name.strip_prefix("%RETRY%") {
            let times = h.opt_i64("reconsumeTimes")?.unwrap_or(0).max(0);
            // The consumer's own maxReconsumeTimes, else the group's attempts.
            let max = match h.opt_i64("maxReconsumeTimes")? {
                Some(m) => m,
                None => i64::from(self.consumer_group(group).await?.max_delivery_attempts) - 1,
            };
            if times >= max {
                name = names::dlq_topic(group);
                queue = -1;
                dead = true;
            }
        }
        let topic = self.producer_topic(&name).await?;
        if topic.permission == Permission::Read {
            return Err(BrokerError::invalid(Reason::Forbidden, format!("topic {name:?} is read-only")));
        }
        if queue < 0 {
            // No queue chosen: one of a group this node leads (no hop), else any.
            let local = self.local_queues(&topic);
            let q = local.get(self.next_rr() % local.len().max(1)).copied().unwrap_or(0);
            let g = self.queue_group(&topic, q as i32)?;
            return Ok((topic, g, q, dead));
        }
        let (g, q) = self.queue_target(&topic, h.opt("bname"), queue)?;
        Ok((topic, g, q, dead))
    }

    /// The request's messages, checked by the core, for queue `queue` of `topic` on `group`.
    fn send_messages(
        &self,
        req: &Command,
        peer: SocketAddr,
        topic: Topic,
        (group, queue): (GroupId, u32),
        dead: bool,
    ) -> Result<Parsed, BrokerError> {
        let h = Header::of(req, req.code != code::SEND_MESSAGE);
        let born_host = Self::client_addr(req, peer);
        let sys_flag = h.opt_i64("sysFlag")?.unwrap_or(0) as i32;
        let born_ms = h.opt_i64("bornTimestamp")?;
        let reconsume_times = h.opt_i64("reconsumeTimes")?;
        let now = now_ms();
        let batch = req.code == code::SEND_BATCH_MESSAGE || h.flag("batch");
        let sent: Vec<(String, Bytes, i32)> = if batch {
            decode_batch(req.body.clone())
                .map_err(|e| BrokerError::invalid(Reason::BadRequest, format!("batch body: {e}")))?
                .into_iter()
                .map(|m| (m.properties, m.body, m.flag))
                .collect()
        } else {
            let flag = h.opt_i64("flag")?.unwrap_or(0) as i32;
            vec![(h.opt("properties").unwrap_or_default().to_string(), req.body.clone(), flag)]
        };
        if sent.is_empty() {
            return Err(BrokerError::invalid(Reason::MessageBodyEmpty, "the batch holds no message"));
        }
        let mut msgs = Vec::with_capacity(sent.len());
        for (props, body, flag) in sent {
            let m = Sent {
                properties: &props,
                body,
                flag,
                sys_flag: if batch { 0 } else { sys_flag },
                born_ms,
                born_host: born_host.clone(),
                reconsume_times,
            };
            let mut d = draft(m, new_message_id, now)?;
            if dead {
                d.delivery_ms = None;
            }
            // The 4.x protocol has no topic types; Apache's brokers do not check them there.
            let mut nm = self.prepare(&topic, d, false)?;
            nm.queue_id = queue;
            msgs.push(nm);
        }
        Ok(Parsed { topic, group, queue, msgs })
    }
}
