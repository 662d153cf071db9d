//! The read path of one broker group: pull by offset with long polling, queue bounds, offsets
//! by time, committed consumer offsets.

use raftmq_storage::broker::reader;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::RecordView;
use tokio::time::Instant;

use super::BrokerGroup;
use super::filter::Filter;
use super::traffic::Direction;
use crate::error::BrokerError;

/// Most consume-queue units scanned per read round (bounds work when a filter skips most).
const SCAN_UNITS_MAX: usize = 4096;

/// What to pull.
#[derive(Debug)]
pub struct PullRequest<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Queue.
    pub queue: u32,
    /// First offset wanted.
    pub offset: u64,
    /// Most messages.
    pub max: usize,
    /// Most record bytes after the first message.
    pub bytes_max: usize,
    /// Which messages.
    pub filter: &'a Filter,
    /// When to give up waiting for the first message.
    pub deadline: Instant,
}

/// What a pull returned.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Matching messages, in offset order.
    pub messages: Vec<StoredMessage>,
    /// Where the next pull should start.
    pub next_offset: u64,
    /// Body bytes of `messages`.
    pub body_bytes: usize,
}

/// Why a pull offset cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetOutOfRange {
    /// Lowest offset still stored.
    pub min: u64,
    /// Offset the next message will get.
    pub end: u64,
}

/// Where a consumer group is with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// Acked, or below the group's committed offset.
    Consumed,
    /// Handed out and not acked yet, at this delivery attempt.
    InFlight(u32),
    /// Not delivered to the group yet.
    NotConsumed,
}

impl BrokerGroup {
    /// The message at `offset` of a queue, if it is still stored.
    pub async fn message_at(
        &self,
        topic: &str,
        queue: u32,
        offset: u64,
    ) -> Result<Option<StoredMessage>, BrokerError> {
        let Some(tid) = self.data.read(|s| s.topic_id(topic)) else { return Ok(None) };
        let data = self.data.clone();
        self.blocking(move || {
            let (store, group) = (data.store(), data.group());
            let units = reader::cq_units(store, group, tid, queue, offset, offset + 1, 1)?;
            Ok(reader::messages(data.log(), &units)?.pop())
        })
        .await
    }

    /// `(min, end)` offsets of a queue: readable offsets are `min..end`.
    pub fn bounds(&self, topic: &str, queue: u32) -> (u64, u64) {
        let end = self.data.notifier().end(topic, queue);
        let min = self.data.read(|s| s.queue(topic, queue).min);
        (min.min(end), end)
    }

    /// Reads up to `req.max` messages matching `req.filter` from `req.offset`, waiting until
    /// `req.deadline` for the first one. `Ok(Err(..))` when the offset is outside the queue.
    pub async fn pull(&self, req: &PullRequest<'_>) -> Result<Result<Pulled, OffsetOutOfRange>, BrokerError> {
        let (topic, queue) = (req.topic, req.queue);
        let mut offset = req.offset;
        let mut rx = self.data.notifier().subscribe(topic, queue);
        loop {
            let end = *rx.borrow_and_update();
            let (min, _) = self.bounds(topic, queue);
            if offset < min || offset > end {
                return Ok(Err(OffsetOutOfRange { min, end }));
            }
            if offset < end {
                let got = self.read(topic, queue, offset, end, req.max, req.bytes_max, req.filter).await?;
                if !got.messages.is_empty() || Instant::now() >= req.deadline {
                    self.traffic.add(Direction::Get, topic, queue, got.messages.len(), got.body_bytes);
                    return Ok(Ok(got));
                }
                // Everything scanned was filtered out: keep waiting from past it.
                offset = got.next_offset;
                if offset < end {
                    continue;
                }
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    return Err(BrokerError::Unavailable("broker group stopped".into()));
                },
                () = tokio::time::sleep_until(req.deadline) => return Ok(Ok(Pulled { messages: Vec::new(), next_offset: offset, body_bytes: 0 })),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn read(
        &self,
        topic: &str,
        queue: u32,
        from: u64,
        end: u64,
        max: usize,
        bytes_max: usize,
        filter: &Filter,
    ) -> Result<Pulled, BrokerError> {
        let Some(tid) = self.data.read(|s| s.topic_id(topic)) else {
            return Ok(Pulled { messages: Vec::new(), next_offset: from, body_bytes: 0 });
        };
        let data = self.data.clone();
        let filter = filter.clone();
        self.blocking(move || {
            let group = data.group();
            let units =
                reader::cq_units(data.store(), group, tid, queue, from, end, SCAN_UNITS_MAX.max(max))?;
            let scanned_to = units.last().map_or(from, |(o, _)| o + 1);
            let wanted: Vec<_> = units.into_iter().filter(|(_, u)| filter.may_match(u.tag_hash)).collect();
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let mut body_bytes = 0usize;
            let mut next = scanned_to;
            for m in reader::messages(data.log(), &wanted)? {
                let view = RecordView::parse(&m.record)?;
                if !filter.matches(&view) {
                    continue;
                }
                if out.len() >= max || (!out.is_empty() && bytes + m.record.len() > bytes_max) {
                    next = m.offset;
                    break;
                }
                bytes += m.record.len();
                body_bytes += view.body.len();
                out.push(m);
            }
            Ok(Pulled { messages: out, next_offset: next, body_bytes })
        })
        .await
    }

    /// The first offset of a queue stored at or after `ms`.
    pub async fn offset_for_time(&self, topic: &str, queue: u32, ms: i64) -> Result<u64, BrokerError> {
        let (min, end) = self.bounds(topic, queue);
        let Some(tid) = self.data.read(|s| s.topic_id(topic)) else { return Ok(end) };
        let data = self.data.clone();
        self.blocking(move || reader::offset_for_time(data.store(), data.group(), tid, queue, min, end, ms))
            .await
    }

    /// Commits `offset` as consumer group `group`'s offset on a queue, through the group's Raft
    /// log; an offset outside the queue (`min..=end`) is refused.
    pub async fn commit_offset(
        &self,
        group: String,
        topic: String,
        queue: u32,
        offset: i64,
    ) -> Result<(), BrokerError> {
        let (min, end) = self.bounds(&topic, queue);
        if offset < min as i64 || offset > end as i64 {
            return Err(BrokerError::BadRequest {
                code: crate::error::Reason::IllegalOffset,
                message: format!(
                    "offset {offset} is outside the queue: committable offsets are {min}..={end}"
                ),
            });
        }
        self.offsets.commit(group, topic, queue, offset as u64).await
    }

    /// The committed offset of `group` on a queue, read linearizably.
    pub async fn committed(&self, group: &str, topic: &str, queue: u32) -> Result<Option<u64>, BrokerError> {
        self.group.ensure_linearizable().await?;
        Ok(self.data.read(|s| s.committed(group, topic, queue)))
    }
}

impl BrokerGroup {
    /// Messages of `topic` stored in `[from_ms, to_ms)`, oldest first per queue, at most `max`.
    pub async fn in_time_range(
        &self,
        topic: &str,
        queues: &[u32],
        from_ms: i64,
        to_ms: i64,
        max: usize,
    ) -> Result<Vec<(u32, StoredMessage)>, BrokerError> {
        let mut out = Vec::new();
        for &q in queues {
            let from = self.offset_for_time(topic, q, from_ms).await?;
            let to = self.offset_for_time(topic, q, to_ms).await?;
            if from >= to || out.len() >= max {
                continue;
            }
            let Some(tid) = self.data.read(|s| s.topic_id(topic)) else { return Ok(out) };
            let data = self.data.clone();
            let left = max - out.len();
            let found = self
                .blocking(move || {
                    let units = reader::cq_units(data.store(), data.group(), tid, q, from, to, left)?;
                    reader::messages(data.log(), &units)
                })
                .await?;
            out.extend(found.into_iter().map(|m| (q, m)));
        }
        Ok(out)
    }

    /// Where every consumer group that consumed from a queue is with the message at `offset`.
    pub fn consumption(&self, topic: &str, queue: u32, offset: u64) -> Vec<(String, Consumption)> {
        self.data.read(|s| {
            let Some(tid) = s.topic_id(topic) else { return Vec::new() };
            let mut out: std::collections::BTreeMap<String, Consumption> = Default::default();
            for ((g, t, q), committed) in &s.consumers {
                if (*t, *q) == (tid, queue) {
                    let c =
                        if offset < *committed { Consumption::Consumed } else { Consumption::NotConsumed };
                    out.insert(g.clone(), c);
                }
            }
            for ((g, t, q), p) in &s.pops.queues {
                if (*t, *q) != (tid, queue) {
                    continue;
                }
                let c = match p.inflight.get(&offset) {
                    Some(f) => Consumption::InFlight(f.attempt),
                    None if offset < p.cursor => Consumption::Consumed,
                    None => Consumption::NotConsumed,
                };
                // Receive/ack state is the more precise where a group has both.
                out.insert(g.clone(), c);
            }
            out.into_iter().collect()
        })
    }

    /// Messages of `topic` with `message_id` (if not empty) or with `key`: `(queue, message)`.
    pub async fn find(
        &self,
        topic: &str,
        message_id: &str,
        key: &str,
        max: usize,
    ) -> Result<Vec<(u32, StoredMessage)>, BrokerError> {
        let Some(tid) = self.data.read(|s| s.topic_id(topic)) else { return Ok(Vec::new()) };
        let data = self.data.clone();
        let (message_id, key) = (message_id.to_string(), key.to_string());
        self.blocking(move || {
            let group = data.group();
            let locations: Vec<(u32, u64)> = if !message_id.is_empty() {
                reader::find_id(data.store(), group, tid, &message_id)?.into_iter().collect()
            } else {
                reader::find_key(data.store(), group, tid, &key, max)?
            };
            let mut out = Vec::new();
            for (q, o) in locations {
                let units = reader::cq_units(data.store(), group, tid, q, o, o + 1, 1)?;
                for m in reader::messages(data.log(), &units)? {
                    out.push((q, m));
                }
            }
            Ok(out)
        })
        .await
    }
}
