//! VIEW_MESSAGE_BY_ID (33): a message by its physical offset (the offset message id's), and
//! QUERY_MESSAGE (12): messages by key. Both read this node's replicas: any replica holds every
//! applied message, so no forwarding is needed.

use bytes::BytesMut;
use raftmq_storage::GroupId;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::nameserver::Topic;

use super::codec::Command;
use super::codes::response as rc;
use super::context::Remoting;
use super::convert::Place;
use super::convert::encode_stored;
use super::header::Header;
use super::queues::broker_groups;
use super::queues::local_id;
use super::status;
use crate::broker::location::Location;
use crate::error::BrokerError;

/// Most messages one QUERY_MESSAGE returns.
const QUERY_MAX: i64 = 64;

impl Remoting {
    /// Appends `messages` (of `topic`, on broker group `g`) to `out` in the 4.x stored layout.
    async fn encode_found(
        &self,
        out: &mut BytesMut,
        topic: Option<&Topic>,
        g: GroupId,
        messages: &[StoredMessage],
    ) {
        let Some(b) = self.brokers.get(g) else { return };
        for m in messages {
            let Ok(view) = RecordView::parse(&m.record) else { continue };
            let queue = topic.map_or(view.queue_id as i32, |t| local_id(t, view.queue_id));
            let at = Place {
                queue_id: queue,
                physical_offset: b.location(m).encode().unwrap_or(-1),
                store_host: self.store_host,
            };
            encode_stored(out, m, &view, at);
        }
    }

    /// VIEW_MESSAGE_BY_ID.
    pub async fn view_message(&self, req: &Command) -> Command {
        let res = async {
            let offset = Header::of(req, false).i64("offset")?;
            let loc = Location::decode(offset)
                .filter(|l| self.brokers.get(l.group).is_some())
                .ok_or_else(|| BrokerError::bad_request(format!("offset {offset} names no message here")))?;
            let Some(b) = self.brokers.get(loc.group) else { return Ok(None) };
            let Some(m) = b.message_by_location(loc).await? else { return Ok(None) };
            let topic =
                RecordView::parse(&m.record).ok().and_then(|v| self.topic_local(v.topic).ok().flatten());
            let mut body = BytesMut::new();
            self.encode_found(&mut body, topic.as_ref(), loc.group, std::slice::from_ref(&m)).await;
            Ok::<_, BrokerError>(Some(body))
        }
        .await;
        match res {
            Ok(Some(body)) => status::ok(req).with_body(body.freeze()),
            Ok(None) => req.response(
                rc::SYSTEM_ERROR,
                Some("no message at that offset: removed or never stored".into()),
            ),
            Err(e) => status::error(req, &e),
        }
    }

    /// QUERY_MESSAGE: messages of a topic by key, from every broker group of the topic.
    pub async fn query_message(&self, req: &Command) -> Command {
        let res = async {
            let h = Header::of(req, false);
            let topic = self.topic(h.str("topic")?).await?;
            let key = h.str("key")?;
            let max = h.opt_i64("maxNum")?.unwrap_or(32).clamp(1, QUERY_MAX) as usize;
            let mut body = BytesMut::new();
            let mut found = 0;
            // A 4.x client asks every broker of the topic (each at its leader's address) and
            // merges: answer for the groups this node leads, or for all when it leads none.
            let all = broker_groups(&topic);
            let led: Vec<GroupId> = all.iter().copied().filter(|g| self.local_leader(*g).is_some()).collect();
            for g in if led.is_empty() { all } else { led } {
                let Some(b) = self.brokers.get(g) else { continue };
                let ms: Vec<StoredMessage> = b
                    .find(&topic.name, "", key, max)
                    .await?
                    .into_iter()
                    .map(|(_, m)| m)
                    .take(max - found)
                    .collect();
                found += ms.len();
                self.encode_found(&mut body, Some(&topic), g, &ms).await;
            }
            Ok::<_, BrokerError>((found, body))
        }
        .await;
        match res {
            Ok((0, _)) => req.response(rc::QUERY_NOT_FOUND, Some("no message with that key".into())),
            Ok((_, body)) => status::ok(req)
                .with("indexLastUpdateTimestamp", crate::clock::now_ms())
                .with("indexLastUpdatePhyoffset", 0)
                .with_body(body.freeze()),
            Err(e) => status::error(req, &e),
        }
    }
}
