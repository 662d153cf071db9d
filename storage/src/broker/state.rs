//! The in-memory part of a broker group's state machine, and the pure apply of broker commands.
//!
//! Apply assigns queue offsets in log order and emits every record it changes (consume-queue
//! units, indexes, queue state) into a [`Sink`], which the state machine turns into one write
//! batch together with the applied log id.

use std::collections::BTreeMap;
use std::collections::HashMap;

use super::keys;
use super::keys::CqUnit;
use super::record::RecordView;
use super::record::record_positions;
use crate::error::DecodeError;
use crate::types::GroupId;

/// Where apply writes its changes.
pub trait Sink {
    /// Writes `value` at `key`.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Deletes `key`.
    fn delete(&mut self, key: &[u8]);
    /// Deletes every key in `[from, to)`.
    fn delete_range(&mut self, from: &[u8], to: &[u8]);
}

/// A sink that records changes, for tests: puts as `(key, value)`, deletes as `(key, [])`
/// prefixed with `-`, ranges as `(from, to)` prefixed with `~`.
impl Sink for Vec<(Vec<u8>, Vec<u8>)> {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.push((key.to_vec(), value.to_vec()));
    }
    fn delete(&mut self, key: &[u8]) {
        self.push(([b"-", key].concat(), Vec::new()));
    }
    fn delete_range(&mut self, from: &[u8], to: &[u8]) {
        self.push(([b"~", from].concat(), to.to_vec()));
    }
}

/// What retention removes from one queue, planned by reading the store (see
/// [`super::reader::plan_retain`]) and then applied without reading anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueExpiry {
    /// Topic id.
    pub topic_id: u32,
    /// Queue.
    pub queue: u32,
    /// The queue's new lowest offset.
    pub new_min: u64,
    /// Message ids of the removed messages (their index entries go too).
    pub ids: Vec<String>,
    /// Keys of the removed messages with their offsets.
    pub keys: Vec<(String, u64)>,
}

/// One retention pass over a broker group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetainPlan {
    /// Per-queue removals.
    pub expiries: Vec<QueueExpiry>,
    /// Lowest log index any retained message lives at afterwards: entries below hold nothing a
    /// consumer can read and may be deleted from the log.
    pub floor: u64,
}

/// The offset reported for a message that got none yet (a delayed message waiting for its
/// delivery time).
pub const NOT_YET: u64 = u64::MAX;

/// Offsets of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Offset the next message gets (= number of messages ever stored).
    pub next: u64,
    /// Lowest offset still stored (retention moves it up).
    pub min: u64,
}

impl QueueState {
    pub(crate) fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next.to_be_bytes());
        b[8..].copy_from_slice(&self.min.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; 16] = b.try_into().map_err(|_| DecodeError::new("queue state", "not 16 bytes"))?;
        let (n, m) = arr.split_at(8);
        Ok(Self {
            next: u64::from_be_bytes(n.try_into().unwrap_or_default()),
            min: u64::from_be_bytes(m.try_into().unwrap_or_default()),
        })
    }
}

/// Topic ids, queue offsets and committed consumer offsets of a broker group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerState {
    group: GroupId,
    /// Topic name → id, in assignment order.
    pub topics: BTreeMap<String, u32>,
    /// Queue offsets by (topic id, queue).
    pub queues: HashMap<(u32, u32), QueueState>,
    /// Committed offsets by (consumer group, topic id, queue).
    pub consumers: HashMap<(String, u32, u32), u64>,
    /// Retention floor: log entries below it hold no retained message.
    pub floor: u64,
    /// Receive/ack state of consumer groups.
    pub pops: super::pop::PopTable,
    /// Delayed messages waiting for their delivery time.
    pub timers: super::timers::TimerTable,
    /// Half messages waiting for their transaction to end.
    pub halves: super::txn::HalfTable,
    /// Orderly consumers' queue locks.
    pub locks: super::locks::LockTable,
}

impl BrokerState {
    /// An empty state of `group`.
    pub fn new(group: GroupId) -> Self {
        Self {
            group,
            topics: BTreeMap::new(),
            queues: HashMap::new(),
            consumers: HashMap::new(),
            floor: 0,
            pops: super::pop::PopTable::default(),
            timers: Default::default(),
            halves: Default::default(),
            locks: Default::default(),
        }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The id of `topic`, if it ever stored a message here.
    pub fn topic_id(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).copied()
    }

    /// The name of topic id `id`.
    pub fn topic_name(&self, id: u32) -> Option<&str> {
        self.topics.iter().find(|(_, t)| **t == id).map(|(n, _)| n.as_str())
    }

    /// Every topic's name by its id, for walking tables keyed by topic id.
    pub fn topic_names(&self) -> std::collections::HashMap<u32, &str> {
        self.topics.iter().map(|(n, id)| (*id, n.as_str())).collect()
    }

    /// Offsets of a queue (zeros if it never stored a message).
    pub fn queue(&self, topic: &str, queue: u32) -> QueueState {
        self.topic_id(topic).and_then(|t| self.queues.get(&(t, queue)).copied()).unwrap_or_default()
    }

    /// The committed offset of `group` on a queue, if any.
    pub fn committed(&self, group: &str, topic: &str, queue: u32) -> Option<u64> {
        let t = self.topic_id(topic)?;
        self.consumers.get(&(group.to_string(), t, queue)).copied()
    }

    fn topic_id_or_assign(&mut self, topic: &str, sink: &mut impl Sink) -> u32 {
        if let Some(id) = self.topics.get(topic) {
            return *id;
        }
        let id = self.topics.len() as u32 + 1;
        self.topics.insert(topic.to_string(), id);
        sink.put(&keys::topic(self.group, topic), &id.to_be_bytes());
        id
    }

    /// Stores a batch appended at `log_index`: assigns each message the next offset of its queue,
    /// in batch order, and indexes it. Returns the offsets, one per message; adds each queue it
    /// appended to (topic name, queue) to `touched` once, for waking long polls.
    pub fn apply_append(
        &mut self,
        log_index: u64,
        store_ms: i64,
        batch: &[u8],
        sink: &mut impl Sink,
        touched_names: &mut Vec<(String, u32)>,
    ) -> Result<Vec<u64>, DecodeError> {
        let positions = record_positions(batch)?;
        // Parse everything before changing anything: a corrupt batch changes nothing.
        let views = positions
            .iter()
            .map(|p| RecordView::parse(&batch[p.pos as usize..(p.pos + p.len) as usize]))
            .collect::<Result<Vec<_>, _>>()?;
        let mut offsets = Vec::with_capacity(views.len());
        let mut touched: Vec<(u32, u32)> = Vec::new();
        for (p, v) in positions.iter().zip(&views) {
            let tid = self.topic_id_or_assign(v.topic, sink);
            if v.message_type == super::record::StoredType::Transaction {
                // A half message: no offset until its transaction commits.
                let key = (log_index, p.pos);
                let half = super::txn::Half {
                    topic_id: tid,
                    len: p.len,
                    message_id: v.message_id.to_string(),
                    checks: 0,
                    last_check_ms: store_ms,
                };
                sink.put(&keys::half(self.group, &key), &half.encode());
                self.halves.insert(key, half);
                offsets.push(NOT_YET);
                continue;
            }
            if let Some(at) = v.delivery_ms.filter(|d| *d > store_ms) {
                // Not yet: it waits in the timer table, with no offset until delivered.
                let key = (at, log_index, p.pos);
                let timer = super::timers::Timer { len: p.len, message_id: v.message_id.to_string() };
                sink.put(&keys::timer(self.group, &key), &timer.encode());
                self.timers.insert(key, timer);
                offsets.push(NOT_YET);
                continue;
            }
            let q = self.queues.entry((tid, v.queue_id)).or_default();
            let offset = q.next;
            q.next += 1;
            if !touched.contains(&(tid, v.queue_id)) {
                touched.push((tid, v.queue_id));
                if !touched_names.iter().any(|(t, q)| t == v.topic && *q == v.queue_id) {
                    touched_names.push((v.topic.to_string(), v.queue_id));
                }
            }
            let unit =
                CqUnit { log_index, pos: p.pos, len: p.len, store_ms, tag_hash: keys::tag_hash(v.tag) };
            sink.put(&keys::cq(self.group, tid, v.queue_id, offset), &unit.encode());
            let mut loc = [0u8; 12];
            loc[..4].copy_from_slice(&v.queue_id.to_be_bytes());
            loc[4..].copy_from_slice(&offset.to_be_bytes());
            sink.put(&keys::msg_id(self.group, tid, v.message_id), &loc);
            for k in &v.keys {
                sink.put(&keys::key(self.group, tid, k, v.queue_id, offset), &[]);
            }
            offsets.push(offset);
        }
        for (tid, queue) in touched {
            let st = self.queues[&(tid, queue)];
            sink.put(&keys::queue(self.group, tid, queue), &st.encode());
        }
        Ok(offsets)
    }

    /// Appends the copies a move, a delivery or a commit carries. Decoding fails
    /// before any change, so a corrupt batch leaves everything as it was.
    fn append_copies(
        &mut self,
        log_index: u64,
        a: &crate::command::AppendBatch,
        sink: &mut impl Sink,
        touched_names: &mut Vec<(String, u32)>,
    ) -> Result<Vec<u64>, String> {
        self.apply_append(log_index, a.store_ms, &a.batch, sink, touched_names).map_err(|e| e.to_string())
    }

    /// Applies a retention plan: raises queue minimums, drops consume-queue units and index
    /// entries of removed messages, and raises the floor. Never lowers anything.
    pub fn apply_retain(&mut self, plan: &RetainPlan, sink: &mut impl Sink) {
        for e in &plan.expiries {
            let Some(q) = self.queues.get_mut(&(e.topic_id, e.queue)) else { continue };
            let new_min = e.new_min.min(q.next);
            if new_min <= q.min {
                continue;
            }
            sink.delete_range(
                &keys::cq(self.group, e.topic_id, e.queue, q.min),
                &keys::cq(self.group, e.topic_id, e.queue, new_min),
            );
            for id in &e.ids {
                sink.delete(&keys::msg_id(self.group, e.topic_id, id));
            }
            for (k, off) in &e.keys {
                sink.delete(&keys::key(self.group, e.topic_id, k, e.queue, *off));
            }
            q.min = new_min;
            let st = *q;
            sink.put(&keys::queue(self.group, e.topic_id, e.queue), &st.encode());
        }
        if plan.floor > self.floor {
            self.floor = plan.floor;
            sink.put(&keys::floor(self.group), &self.floor.to_be_bytes());
        }
    }

    /// Applies a receive (see [`super::pop`]).
    pub fn apply_pop(
        &mut self,
        cmd: &super::pop::PopCmd,
        sink: &mut impl Sink,
    ) -> Result<Vec<super::pop::Popped>, String> {
        // A group may start on a topic before its first message here: give the topic its id.
        let tid = self.topic_id_or_assign(&cmd.topic, sink);
        let queues = &self.queues;
        let bounds = |q: u32| queues.get(&(tid, q)).map_or((0, 0), |s| (s.min, s.next));
        self.pops.apply_pop(self.group, tid, cmd, bounds, sink)
    }

    /// Applies acks or changes of invisible time (see [`super::pop`]).
    pub fn apply_ack(
        &mut self,
        cmd: &super::pop::AckCmd,
        sink: &mut impl Sink,
    ) -> Vec<super::pop::AckResult> {
        match self.topic_id(&cmd.topic) {
            Some(tid) => self.pops.apply_ack(self.group, tid, cmd, sink),
            None => vec![super::pop::AckResult::NotInflight; cmd.items.len()],
        }
    }

    /// Applies a move to the retry or dead-letter topic (see [`super::moves`]): if every item is
    /// still in flight under its epoch and the copies decode, removes the items from flight and
    /// appends the copies; otherwise changes nothing. Returns the copies' queue offsets.
    pub fn apply_move(
        &mut self,
        log_index: u64,
        cmd: &super::moves::MoveCmd,
        sink: &mut impl Sink,
        touched_names: &mut Vec<(String, u32)>,
    ) -> Result<Vec<u64>, String> {
        let ack = &cmd.ack;
        let tid =
            self.topic_id(&ack.topic).ok_or_else(|| format!("topic {:?} has no messages here", ack.topic))?;
        for (queue, offset, epoch) in &ack.items {
            let inflight =
                self.pops.queues.get(&(ack.group.clone(), tid, *queue)).and_then(|p| p.inflight.get(offset));
            if inflight.is_none_or(|f| f.epoch != *epoch) {
                return Err(format!(
                    "queue {queue} offset {offset} is no longer in flight under epoch {epoch}"
                ));
            }
        }
        let offsets = self.append_copies(log_index, &cmd.append, sink, touched_names)?;
        self.pops.apply_ack(self.group, tid, ack, sink);
        Ok(offsets)
    }

    /// Applies a delivery of due timers (see [`super::timers`]): if every timer is pending and
    /// due by the command's store time and the copies decode, appends the copies and removes
    /// the timers; otherwise changes nothing. Returns the copies' queue offsets.
    pub fn apply_deliver(
        &mut self,
        log_index: u64,
        cmd: &super::timers::DeliverCmd,
        sink: &mut impl Sink,
        touched_names: &mut Vec<(String, u32)>,
    ) -> Result<Vec<u64>, String> {
        let now = cmd.append.store_ms;
        if let Some(k) = cmd.timers.iter().find(|k| k.0 > now || !self.timers.pending.contains_key(k)) {
            return Err(format!("timer {k:?} is not pending or not due at {now}"));
        }
        let offsets = self.append_copies(log_index, &cmd.append, sink, touched_names)?;
        for k in &cmd.timers {
            self.timers.remove(k);
            sink.delete(&keys::timer(self.group, k));
        }
        Ok(offsets)
    }

    /// Applies a transaction step (see [`super::txn`]) to the half message it names; an unknown
    /// one (ended already) or a commit whose copy does not decode changes nothing. Returns the
    /// committed copy's offset, if any.
    pub fn apply_txn(
        &mut self,
        log_index: u64,
        cmd: &super::txn::TxnCmd,
        sink: &mut impl Sink,
        touched_names: &mut Vec<(String, u32)>,
    ) -> Result<Vec<u64>, String> {
        use super::txn::TxnOp;
        let Some((key, _)) = self.halves.find(&cmd.message_id) else {
            return Err(format!(
                "no pending half message {:?}: its transaction ended already",
                cmd.message_id
            ));
        };
        let offsets = match &cmd.op {
            TxnOp::Checked => {
                if let Some(h) = self.halves.pending.get_mut(&key) {
                    h.checks += 1;
                    h.last_check_ms = cmd.now_ms;
                    sink.put(&keys::half(self.group, &key), &h.encode());
                }
                return Ok(Vec::new());
            }
            TxnOp::Commit(a) => self.append_copies(log_index, a, sink, touched_names)?,
            TxnOp::Rollback => Vec::new(),
        };
        self.halves.remove(&key);
        sink.delete(&keys::half(self.group, &key));
        Ok(offsets)
    }

    /// Locks or unlocks queues for an orderly consumer (see [`super::locks`]); returns the
    /// queues the client holds after it.
    pub fn apply_lock(&mut self, cmd: &super::locks::LockCmd, sink: &mut impl Sink) -> Vec<(String, u32)> {
        let (changed, held) = super::locks::apply(&mut self.locks, cmd);
        for (key, lock) in changed {
            match lock {
                Some(l) => sink.put(&keys::lock(self.group, &key), &l.encode()),
                None => sink.delete(&keys::lock(self.group, &key)),
            }
        }
        held
    }

    /// Cancels a pending delayed message; an unknown one (delivered or recalled already) is an
    /// error and changes nothing.
    pub fn apply_recall(
        &mut self,
        cmd: &super::timers::RecallCmd,
        sink: &mut impl Sink,
    ) -> Result<(), String> {
        let (key, _) = self.timers.find(&cmd.message_id).ok_or_else(|| {
            format!("message {:?} is not waiting for delivery: delivered or recalled already", cmd.message_id)
        })?;
        self.timers.remove(&key);
        sink.delete(&keys::timer(self.group, &key));
        Ok(())
    }

    /// Records committed consumer offsets. An offset past the queue's end is clamped to it, and a
    /// queue that never stored a message keeps offset 0: the same on every replica.
    pub fn apply_commit_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, u32, u64)],
        sink: &mut impl Sink,
    ) {
        for (topic, queue, offset) in offsets {
            let Some(tid) = self.topic_id(topic) else { continue };
            let end = self.queues.get(&(tid, *queue)).map_or(0, |q| q.next);
            let off = (*offset).min(end);
            self.consumers.insert((group.to_string(), tid, *queue), off);
            sink.put(&keys::consumer(self.group, group, tid, *queue), &off.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::broker::record::BatchBuilder;
    use crate::broker::record::NewMessage;
    use crate::broker::record::StoredType;

    fn batch(msgs: &[(&str, u32)]) -> Bytes {
        let mut b = BatchBuilder::new();
        for (i, (topic, q)) in msgs.iter().enumerate() {
            b.push(&NewMessage {
                topic: topic.to_string(),
                queue_id: *q,
                message_id: format!("id-{topic}-{q}-{i}"),
                message_type: StoredType::Normal,
                body_encoding: 1,
                tag: None,
                keys: vec!["k".into()],
                message_group: None,
                born_ms: 0,
                born_host: String::new(),
                delivery_ms: None,
                trace_context: None,
                properties: vec![],
                body_md5: [0; 16],
                body: Bytes::from_static(b"x"),
            });
        }
        b.finish()
    }

    #[test]
    fn offsets_are_gapless_per_queue_in_log_order() {
        let mut s = BrokerState::new(GroupId(1));
        let mut sink = Vec::new();
        let o1 = s
            .apply_append(
                5,
                100,
                &batch(&[("a", 0), ("a", 1), ("a", 0), ("b", 0)]),
                &mut sink,
                &mut Vec::new(),
            )
            .unwrap();
        assert_eq!(o1, vec![0, 0, 1, 0]);
        let o2 = s.apply_append(6, 101, &batch(&[("a", 0), ("b", 0)]), &mut sink, &mut Vec::new()).unwrap();
        assert_eq!(o2, vec![2, 1]);
        assert_eq!(s.queue("a", 0), QueueState { next: 3, min: 0 });
        assert_eq!(s.topics.len(), 2);
    }

    #[test]
    fn corrupt_batch_changes_nothing() {
        let mut s = BrokerState::new(GroupId(1));
        let mut sink = Vec::new();
        let mut bad = batch(&[("a", 0), ("a", 0)]).to_vec();
        let n = bad.len();
        bad[n - 2] ^= 0xff;
        bad.truncate(n - 1);
        assert!(s.apply_append(1, 0, &bad, &mut sink, &mut Vec::new()).is_err());
        assert!(sink.is_empty());
        assert_eq!(s, BrokerState::new(GroupId(1)));
    }

    #[test]
    fn retention_only_moves_forward() {
        let mut s = BrokerState::new(GroupId(1));
        let mut sink = Vec::new();
        s.apply_append(1, 0, &batch(&[("a", 0), ("a", 0), ("a", 0)]), &mut sink, &mut Vec::new()).unwrap();
        let tid = s.topic_id("a").unwrap();
        let plan = |min, floor| RetainPlan {
            expiries: vec![QueueExpiry {
                topic_id: tid,
                queue: 0,
                new_min: min,
                ids: vec!["x".into()],
                keys: vec![],
            }],
            floor,
        };
        let mut sink = Vec::new();
        s.apply_retain(&plan(2, 7), &mut sink);
        assert_eq!(s.queue("a", 0), QueueState { next: 3, min: 2 });
        assert_eq!(s.floor, 7);
        assert!(sink.iter().any(|(k, _)| k[0] == b'~'), "the consume-queue range is deleted");
        let mut sink = Vec::new();
        s.apply_retain(&plan(1, 3), &mut sink);
        assert_eq!((s.queue("a", 0).min, s.floor), (2, 7));
        assert!(sink.is_empty());
        s.apply_retain(&plan(99, 8), &mut Vec::new());
        assert_eq!(s.queue("a", 0).min, 3, "never past the end");
    }

    #[test]
    fn dead_letter_moves_in_flight_messages_once() {
        use crate::broker::moves::MoveCmd;
        use crate::broker::pop::AckCmd;
        use crate::broker::pop::AckOp;
        use crate::broker::pop::PopCmd;
        use crate::broker::pop::PopQueueCmd;
        use crate::command::AppendBatch;

        let mut s = BrokerState::new(GroupId(1));
        let mut sink = Vec::new();
        s.apply_append(1, 0, &batch(&[("a", 0), ("a", 0)]), &mut sink, &mut Vec::new()).unwrap();
        let take =
            PopQueueCmd { queue: 0, expect_cursor: 0, advance_to: 2, take: vec![0, 1], redeliver: vec![] };
        let pop =
            PopCmd { group: "g".into(), topic: "a".into(), now_ms: 0, invisible_ms: 10, queues: vec![take] };
        s.apply_pop(&pop, &mut sink).unwrap();
        let cmd = |epoch: u32, batch: Bytes| MoveCmd {
            ack: AckCmd {
                group: "g".into(),
                topic: "a".into(),
                now_ms: 20,
                op: AckOp::Ack,
                items: vec![(0, 0, epoch)],
            },
            append: AppendBatch { store_ms: 20, store_host: "n1".into(), batch },
        };
        // A stale epoch: rejected, nothing changes.
        let before = s.clone();
        let mut sink = Vec::new();
        assert!(s.apply_move(2, &cmd(9, batch(&[("%DLQ%g", 0)])), &mut sink, &mut Vec::new()).is_err());
        assert_eq!((&s, sink.len()), (&before, 0));
        // A corrupt copy: rejected, nothing changes.
        let mut bad = batch(&[("%DLQ%g", 0)]).to_vec();
        bad.truncate(bad.len() - 1);
        assert!(s.apply_move(2, &cmd(1, Bytes::from(bad)), &mut sink, &mut Vec::new()).is_err());
        assert_eq!((&s, sink.len()), (&before, 0));
        // The real move: out of flight, into the dead-letter queue; offset 1 stays in flight.
        let offsets = s.apply_move(2, &cmd(1, batch(&[("%DLQ%g", 0)])), &mut sink, &mut Vec::new()).unwrap();
        assert_eq!(offsets, vec![0]);
        assert_eq!(s.queue("%DLQ%g", 0).next, 1);
        let tid = s.topic_id("a").unwrap();
        let inflight: Vec<u64> = s.pops.queues[&("g".to_string(), tid, 0)].inflight.keys().copied().collect();
        assert_eq!(inflight, vec![1]);
        // Twice: rejected, so a retried move never makes a second copy.
        assert!(s.apply_move(3, &cmd(1, batch(&[("%DLQ%g", 0)])), &mut sink, &mut Vec::new()).is_err());
        assert_eq!(s.queue("%DLQ%g", 0).next, 1);
    }

    #[test]
    fn commits_clamp_to_the_queue_end() {
        let mut s = BrokerState::new(GroupId(1));
        let mut sink = Vec::new();
        s.apply_append(1, 0, &batch(&[("a", 0), ("a", 0)]), &mut sink, &mut Vec::new()).unwrap();
        s.apply_commit_offsets("g", &[("a".into(), 0, 99), ("unknown".into(), 0, 5)], &mut sink);
        assert_eq!(s.committed("g", "a", 0), Some(2));
        assert_eq!(s.committed("g", "unknown", 0), None);
    }
}
