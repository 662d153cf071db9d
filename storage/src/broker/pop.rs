//! Receive / ack with invisible time (RocketMQ 5 "pop"), replicated like everything else.
//!
//! For each (consumer group, topic, queue) a broker group keeps a cursor (the next offset never
//! handed out) and the in-flight messages: handed out, not yet acked, each with a deadline, a
//! delivery attempt and an epoch. A receive takes new offsets from the cursor and redelivers
//! in-flight messages whose deadline passed (attempt + 1, new epoch); an ack or a change of
//! invisible time must name the current epoch, so a stale receipt handle changes nothing.
//!
//! The leader decides *which* offsets (it reads the consume queue to apply filters) and stamps
//! the time; apply checks the command still fits the state (the cursor did not move, the epochs
//! match) and rejects it whole otherwise, so every replica ends in the same state.

use std::collections::BTreeMap;

use super::keys;
use super::state::Sink;
use crate::codec::Reader;
use crate::codec::Writer;
use crate::error::DecodeError;
use crate::types::GroupId;

/// One message handed out and not yet acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflight {
    /// When it becomes visible again, ms since the epoch.
    pub deadline_ms: i64,
    /// Delivery attempt, from 1.
    pub attempt: u32,
    /// Changes with every delivery and every change of invisible time.
    pub epoch: u32,
}

impl Inflight {
    fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.deadline_ms.to_be_bytes());
        b[8..12].copy_from_slice(&self.attempt.to_be_bytes());
        b[12..].copy_from_slice(&self.epoch.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b, "in-flight record");
        let v = Self { deadline_ms: r.i64()?, attempt: r.u32()?, epoch: r.u32()? };
        r.finish()?;
        Ok(v)
    }
}

/// Pop state of one (consumer group, topic, queue).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopQueue {
    /// Next offset never handed out.
    pub cursor: u64,
    /// Handed out and not acked, by offset.
    pub inflight: BTreeMap<u64, Inflight>,
}

impl PopQueue {
    /// The group's progress on this queue: every offset below it is acked.
    pub fn committed(&self) -> u64 {
        self.inflight.keys().next().copied().unwrap_or(self.cursor).min(self.cursor)
    }
}

/// What a receive asks of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopQueueCmd {
    /// Queue.
    pub queue: u32,
    /// The cursor the leader saw; the command is stale if it moved.
    pub expect_cursor: u64,
    /// The new cursor (past every offset the leader examined, filtered out or taken).
    pub advance_to: u64,
    /// New offsets to hand out, ascending, within `[expect_cursor, advance_to)`.
    pub take: Vec<u64>,
    /// In-flight offsets to hand out again, with the epoch the leader saw.
    pub redeliver: Vec<(u64, u32)>,
}

/// A receive: hands messages out to a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopCmd {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Leader time, ms since the epoch.
    pub now_ms: i64,
    /// How long the messages stay invisible, ms.
    pub invisible_ms: i64,
    /// Per queue.
    pub queues: Vec<PopQueueCmd>,
}

/// One message handed out by a receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Popped {
    /// Queue.
    pub queue: u32,
    /// Offset.
    pub offset: u64,
    /// Its in-flight record.
    pub inflight: Inflight,
}

/// What an [`AckCmd`] does to each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOp {
    /// The group is done with the messages.
    Ack,
    /// Invisible for this many ms from now, under a new epoch (the old handle stops working).
    Change(i64),
    /// Invisible for this many ms from now, same epoch (renewal of a handle the client holds).
    Extend(i64),
}

/// Acks, changes of invisible time or renewals of handed-out messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckCmd {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Leader time, ms since the epoch.
    pub now_ms: i64,
    /// What to do.
    pub op: AckOp,
    /// `(queue, offset, epoch)` from the receipt handles.
    pub items: Vec<(u32, u64, u32)>,
}

/// Outcome of one item of an [`AckCmd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckResult {
    /// Acked (`None`), or the new in-flight record.
    Done(Option<Inflight>),
    /// The message was delivered again since (or its invisible time changed): the handle is
    /// stale.
    Redelivered,
    /// The message is not in flight: acked already, or never handed out.
    NotInflight,
}

fn tq_key(g: GroupId, prefix: u8, group: &str, topic_id: u32, queue: u32) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(&(group.len() as u16).to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(&topic_id.to_be_bytes());
    k.extend_from_slice(&queue.to_be_bytes());
    crate::keys::group_key(g, &k)
}

/// `P` group, topic id, queue → cursor.
pub(crate) fn cursor_key(g: GroupId, group: &str, topic_id: u32, queue: u32) -> Vec<u8> {
    tq_key(g, keys::POP_CURSOR, group, topic_id, queue)
}

/// `R` group, topic id, queue, offset → in-flight record.
pub(crate) fn inflight_key(g: GroupId, group: &str, topic_id: u32, queue: u32, offset: u64) -> Vec<u8> {
    let mut k = tq_key(g, keys::POP_INFLIGHT, group, topic_id, queue);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// Pop state of every (group, topic id, queue) of a broker group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PopTable {
    /// By (consumer group, topic id, queue).
    pub queues: std::collections::HashMap<(String, u32, u32), PopQueue>,
}

impl PopTable {
    /// Applies a receive. `bounds_of(queue)` is the queue's `(min, end)` offsets. A group that
    /// never received from a queue starts at the command's `expect_cursor` (the leader applied
    /// the group's consume-from-where). Returns what was handed out, or why the command is stale
    /// (nothing changed then).
    pub fn apply_pop(
        &mut self,
        g: GroupId,
        topic_id: u32,
        cmd: &PopCmd,
        bounds_of: impl Fn(u32) -> (u64, u64),
        sink: &mut impl Sink,
    ) -> Result<Vec<Popped>, String> {
        // Check everything first: a stale command changes nothing.
        for q in &cmd.queues {
            let key = (cmd.group.clone(), topic_id, q.queue);
            let (min, end) = bounds_of(q.queue);
            let cursor = match self.queues.get(&key) {
                Some(p) => p.cursor,
                None if q.expect_cursor >= min && q.expect_cursor <= end => q.expect_cursor,
                None => {
                    return Err(format!("queue {} start {} outside {min}..={end}", q.queue, q.expect_cursor));
                }
            };
            if cursor != q.expect_cursor {
                return Err(format!("queue {} cursor moved ({} != {})", q.queue, cursor, q.expect_cursor));
            }
            if q.advance_to < cursor || q.advance_to > end {
                return Err(format!(
                    "queue {} advance to {} outside {cursor}..={end}",
                    q.queue, q.advance_to
                ));
            }
            if q.take.iter().any(|o| *o < cursor || *o >= q.advance_to) {
                return Err(format!("queue {} takes offsets outside {cursor}..{}", q.queue, q.advance_to));
            }
            let pq = self.queues.get(&key);
            for (o, epoch) in &q.redeliver {
                match pq.and_then(|p| p.inflight.get(o)) {
                    Some(f) if f.epoch == *epoch && f.deadline_ms <= cmd.now_ms => {}
                    _ => return Err(format!("queue {} offset {o} is not due for redelivery", q.queue)),
                }
            }
        }
        let deadline_ms = cmd.now_ms.saturating_add(cmd.invisible_ms);
        let mut out = Vec::new();
        for q in &cmd.queues {
            let key = (cmd.group.clone(), topic_id, q.queue);
            let new = !self.queues.contains_key(&key);
            let pq = self
                .queues
                .entry(key)
                .or_insert_with(|| PopQueue { cursor: q.expect_cursor, inflight: BTreeMap::new() });
            for (o, _) in &q.redeliver {
                if let Some(f) = pq.inflight.get_mut(o) {
                    *f = Inflight { deadline_ms, attempt: f.attempt + 1, epoch: f.epoch.wrapping_add(1) };
                    sink.put(&inflight_key(g, &cmd.group, topic_id, q.queue, *o), &f.encode());
                    out.push(Popped { queue: q.queue, offset: *o, inflight: *f });
                }
            }
            for o in &q.take {
                let f = Inflight { deadline_ms, attempt: 1, epoch: 1 };
                pq.inflight.insert(*o, f);
                sink.put(&inflight_key(g, &cmd.group, topic_id, q.queue, *o), &f.encode());
                out.push(Popped { queue: q.queue, offset: *o, inflight: f });
            }
            if new || q.advance_to != pq.cursor {
                pq.cursor = q.advance_to;
                sink.put(&cursor_key(g, &cmd.group, topic_id, q.queue), &pq.cursor.to_be_bytes());
            }
        }
        Ok(out)
    }

    /// Applies acks, changes of invisible time or renewals; one result per item.
    pub fn apply_ack(
        &mut self,
        g: GroupId,
        topic_id: u32,
        cmd: &AckCmd,
        sink: &mut impl Sink,
    ) -> Vec<AckResult> {
        cmd.items
            .iter()
            .map(|(queue, offset, epoch)| {
                let Some(pq) = self.queues.get_mut(&(cmd.group.clone(), topic_id, *queue)) else {
                    return AckResult::NotInflight;
                };
                let key = inflight_key(g, &cmd.group, topic_id, *queue, *offset);
                match pq.inflight.get_mut(offset) {
                    None => AckResult::NotInflight,
                    Some(f) if f.epoch != *epoch => AckResult::Redelivered,
                    Some(f) => match cmd.op {
                        AckOp::Ack => {
                            pq.inflight.remove(offset);
                            sink.delete(&key);
                            AckResult::Done(None)
                        }
                        AckOp::Change(ms) | AckOp::Extend(ms) => {
                            f.deadline_ms = cmd.now_ms.saturating_add(ms);
                            if matches!(cmd.op, AckOp::Change(_)) {
                                f.epoch = f.epoch.wrapping_add(1);
                            }
                            sink.put(&key, &f.encode());
                            AckResult::Done(Some(*f))
                        }
                    },
                }
            })
            .collect()
    }
}

/// Encodes a [`PopCmd`].
pub fn encode_pop(w: &mut Writer, c: &PopCmd) {
    w.str(&c.group).str(&c.topic).i64(c.now_ms).i64(c.invisible_ms).u32(c.queues.len() as u32);
    for q in &c.queues {
        w.u32(q.queue).u64(q.expect_cursor).u64(q.advance_to).u32(q.take.len() as u32);
        for o in &q.take {
            w.u64(*o);
        }
        w.u32(q.redeliver.len() as u32);
        for (o, e) in &q.redeliver {
            w.u64(*o).u32(*e);
        }
    }
}

fn count(r: &mut Reader<'_>, min_item: usize, what: &'static str) -> Result<usize, DecodeError> {
    let n = r.u32()? as usize;
    if n.saturating_mul(min_item) > r.remaining() {
        return Err(DecodeError::new(what, "count exceeds the entry"));
    }
    Ok(n)
}

/// Decodes a [`PopCmd`].
pub fn decode_pop(r: &mut Reader<'_>) -> Result<PopCmd, DecodeError> {
    let group = r.str()?.to_string();
    let topic = r.str()?.to_string();
    let now_ms = r.i64()?;
    let invisible_ms = r.i64()?;
    let nq = count(r, 24, "pop command")?;
    let mut queues = Vec::with_capacity(nq);
    for _ in 0..nq {
        let queue = r.u32()?;
        let expect_cursor = r.u64()?;
        let advance_to = r.u64()?;
        let nt = count(r, 8, "pop command")?;
        let take = (0..nt).map(|_| r.u64()).collect::<Result<_, _>>()?;
        let nr = count(r, 12, "pop command")?;
        let redeliver = (0..nr).map(|_| Ok((r.u64()?, r.u32()?))).collect::<Result<_, DecodeError>>()?;
        queues.push(PopQueueCmd { queue, expect_cursor, advance_to, take, redeliver });
    }
    Ok(PopCmd { group, topic, now_ms, invisible_ms, queues })
}

/// Encodes an [`AckCmd`].
pub fn encode_ack(w: &mut Writer, c: &AckCmd) {
    w.str(&c.group).str(&c.topic).i64(c.now_ms);
    match c.op {
        AckOp::Ack => w.u8(0),
        AckOp::Change(ms) => w.u8(1).i64(ms),
        AckOp::Extend(ms) => w.u8(2).i64(ms),
    };
    w.u32(c.items.len() as u32);
    for (q, o, e) in &c.items {
        w.u32(*q).u64(*o).u32(*e);
    }
}

/// Decodes an [`AckCmd`].
pub fn decode_ack(r: &mut Reader<'_>) -> Result<AckCmd, DecodeError> {
    let group = r.str()?.to_string();
    let topic = r.str()?.to_string();
    let now_ms = r.i64()?;
    let op = match r.u8()? {
        0 => AckOp::Ack,
        1 => AckOp::Change(r.i64()?),
        2 => AckOp::Extend(r.i64()?),
        t => return Err(DecodeError::new("ack command", format!("unknown operation {t}"))),
    };
    let n = count(r, 16, "ack command")?;
    let items = (0..n).map(|_| Ok((r.u32()?, r.u64()?, r.u32()?))).collect::<Result<_, DecodeError>>()?;
    Ok(AckCmd { group, topic, now_ms, op, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(cursor: u64, advance: u64, take: Vec<u64>, redeliver: Vec<(u64, u32)>, now: i64) -> PopCmd {
        PopCmd {
            group: "g".into(),
            topic: "t".into(),
            now_ms: now,
            invisible_ms: 1000,
            queues: vec![PopQueueCmd {
                queue: 0,
                expect_cursor: cursor,
                advance_to: advance,
                take,
                redeliver,
            }],
        }
    }

    fn ack(items: Vec<(u32, u64, u32)>, op: AckOp) -> AckCmd {
        AckCmd { group: "g".into(), topic: "t".into(), now_ms: 5000, op, items }
    }

    #[test]
    fn receive_ack_and_redelivery() {
        let g = GroupId(1);
        let mut t = PopTable::default();
        let mut sink = Vec::new();
        let got = t.apply_pop(g, 1, &pop(0, 3, vec![0, 2], vec![], 100), |_| (0, 10), &mut sink).unwrap();
        assert_eq!(
            got.iter().map(|p| (p.offset, p.inflight.attempt)).collect::<Vec<_>>(),
            vec![(0, 1), (2, 1)]
        );
        assert_eq!(t.queues[&("g".into(), 1, 0)].cursor, 3);
        // The same command again is stale: the cursor moved.
        assert!(t.apply_pop(g, 1, &pop(0, 3, vec![0], vec![], 100), |_| (0, 10), &mut sink).is_err());
        // Not due yet: refused. Due: attempt 2, new epoch.
        assert!(t.apply_pop(g, 1, &pop(3, 3, vec![], vec![(0, 1)], 500), |_| (0, 10), &mut sink).is_err());
        let again =
            t.apply_pop(g, 1, &pop(3, 3, vec![], vec![(0, 1)], 1100), |_| (0, 10), &mut sink).unwrap();
        assert_eq!((again[0].inflight.attempt, again[0].inflight.epoch), (2, 2));
        // The old handle (epoch 1) is stale now; the new one acks.
        assert_eq!(
            t.apply_ack(g, 1, &ack(vec![(0, 0, 1)], AckOp::Ack), &mut sink),
            vec![AckResult::Redelivered]
        );
        assert_eq!(
            t.apply_ack(g, 1, &ack(vec![(0, 0, 2)], AckOp::Ack), &mut sink),
            vec![AckResult::Done(None)]
        );
        let again = t.apply_ack(g, 1, &ack(vec![(0, 0, 2)], AckOp::Ack), &mut sink);
        assert_eq!(again, vec![AckResult::NotInflight], "acked once only");
        assert_eq!(t.queues[&("g".into(), 1, 0)].committed(), 2, "offset 2 is still in flight");
        // A renewal keeps the epoch; a change of invisible time gives a new one; both keep the
        // attempt.
        let r = t.apply_ack(g, 1, &ack(vec![(0, 2, 1)], AckOp::Extend(10_000)), &mut sink);
        assert_eq!(r, vec![AckResult::Done(Some(Inflight { deadline_ms: 15_000, attempt: 1, epoch: 1 }))]);
        let r = t.apply_ack(g, 1, &ack(vec![(0, 2, 1)], AckOp::Change(30_000)), &mut sink);
        assert_eq!(r, vec![AckResult::Done(Some(Inflight { deadline_ms: 35_000, attempt: 1, epoch: 2 }))]);
    }

    #[test]
    fn first_receive_pins_the_start() {
        let g = GroupId(1);
        let mut t = PopTable::default();
        let mut sink = Vec::new();
        let got = t.apply_pop(g, 1, &pop(7, 7, vec![], vec![], 1), |_| (0, 7), &mut sink).unwrap();
        assert!(got.is_empty());
        assert_eq!(t.queues[&("g".into(), 1, 0)].cursor, 7);
        assert_eq!(
            sink,
            vec![(cursor_key(g, "g", 1, 0), 7u64.to_be_bytes().to_vec())],
            "the start is stored"
        );
    }

    #[test]
    fn bad_commands_change_nothing() {
        let g = GroupId(1);
        let mut t = PopTable::default();
        let mut sink = Vec::new();
        assert!(
            t.apply_pop(g, 1, &pop(0, 11, vec![0], vec![], 1), |_| (0, 10), &mut sink).is_err(),
            "past the end"
        );
        assert!(
            t.apply_pop(g, 1, &pop(0, 2, vec![5], vec![], 1), |_| (0, 10), &mut sink).is_err(),
            "outside range"
        );
        assert!(t.queues.is_empty());
        assert!(sink.is_empty());
    }

    #[test]
    fn commands_round_trip() {
        let p = pop(3, 9, vec![3, 5], vec![(1, 4)], 77);
        let mut w = Writer::default();
        encode_pop(&mut w, &p);
        let v = w.into_vec();
        assert_eq!(decode_pop(&mut Reader::new(&v, "t")).unwrap(), p);
        let a = ack(vec![(1, 2, 3)], AckOp::Change(9));
        let mut w = Writer::default();
        encode_ack(&mut w, &a);
        let v = w.into_vec();
        assert_eq!(decode_ack(&mut Reader::new(&v, "t")).unwrap(), a);
        assert!(decode_pop(&mut Reader::new(&[0, 0, 0, 1, b'g', 0, 0, 0, 0], "t")).is_err());
    }
}
