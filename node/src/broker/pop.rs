//! Receive with invisible time on the leader of a broker group (RocketMQ 5 "pop").
//!
//! A receive plans on the leader's state (which offsets are due again, which new offsets match
//! the filter), proposes the plan as one `Pop` entry, and hands out what apply accepted. Apply
//! rejects a plan made on state that moved meanwhile; the receive then plans again. Receives of
//! one (consumer group, topic) take turns on a lock so they rarely collide. With nothing to hand
//! out, a receive waits for a new message, the next invisible deadline, or an ack (FIFO groups),
//! until its long-polling deadline.
//!
//! A clustering group that is not orderly also receives from its retry topic's queue on this
//! broker group: a due message (its delivery failed) moves there first (`moves`), so the
//! original queue's progress does not wait for it, and is handed out again from there. An
//! orderly group retries in place: the next message of a queue waits for the one before.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use raftmq_storage::Command;
use raftmq_storage::Response;
use raftmq_storage::broker::pop::AckOp;
use raftmq_storage::broker::pop::AckResult;
use raftmq_storage::broker::pop::Inflight;
use raftmq_storage::broker::pop::PopCmd;
use raftmq_storage::broker::pop::PopQueueCmd;
use raftmq_storage::broker::reader;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::RecordView;
use tokio::time::Instant;

use super::BrokerGroup;
use super::filter::Filter;
use super::moves::MoveKind;
use super::moves::MovePolicy;
use super::moves::Moving;
use super::moves::attempts_before;
use super::start::Start;
use super::traffic::Direction;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// Most consume-queue units examined per queue per plan (bounds work when a filter skips most).
const SCAN_UNITS_MAX: usize = 4096;
/// Record bytes after which a receive stops taking more messages.
const RECEIVE_BYTES_MAX: usize = 16 << 20;
/// Plans rejected in a row before a receive gives up (each rejection means the state moved).
const REPLANS_MAX: usize = 8;

/// What a receive asks of one broker group.
#[derive(Debug)]
pub struct ReceiveRequest<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Queues of the topic in this broker group to take from, in the order to try them.
    pub queues: Vec<u32>,
    /// Which messages.
    pub filter: &'a Filter,
    /// Most messages.
    pub max: usize,
    /// How long handed-out messages stay invisible, ms.
    pub invisible_ms: i64,
    /// Where a group that never received from a queue starts (its retry queue: at the oldest).
    pub start: Start,
    /// Orderly group: a queue with a message in flight hands out nothing new.
    pub fifo: bool,
    /// Where due messages go: the retry queue, or the dead-letter queue after the last attempt.
    pub moves: MovePolicy,
    /// Look at the retry queue before the topic's queues (callers alternate, so neither starves).
    pub retry_first: bool,
    /// When to stop waiting for messages.
    pub deadline: Instant,
}

/// One message handed out.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Queue.
    pub queue: u32,
    /// The message.
    pub message: StoredMessage,
    /// Its in-flight record (deadline, attempt of this copy, epoch).
    pub inflight: Inflight,
    /// Delivery attempt, counting deliveries before the message moved to the retry topic.
    pub attempt: u32,
    /// Handed out from the group's retry topic (`queue` and the offset are the retry queue's).
    pub retry: bool,
}

/// Where one receive takes messages from: the requested topic or the group's retry topic.
struct Source<'a> {
    topic: &'a str,
    queues: Vec<u32>,
    filter: Filter,
    retry: bool,
}

/// What one look at a source came to.
enum Step {
    /// Messages were handed out.
    Delivered(Vec<Delivery>),
    /// Messages moved out of flight; look again.
    Moved,
    /// The plan was stale; look again.
    Stale(String),
    /// Nothing to hand out; the earliest deadline of a message in flight.
    Idle(Option<i64>),
}

/// A plan for one receive, made on the leader's state.
#[derive(Default)]
struct Plan {
    /// What to propose; empty when there is nothing to change.
    queues: Vec<PopQueueCmd>,
    /// The messages the plan hands out, by (queue, offset).
    messages: HashMap<(u32, u64), Planned>,
    /// In-flight messages retention removed: ack them away.
    gone: Vec<(u32, u64, u32)>,
    /// Due messages that used up their deliveries: to the dead-letter queue.
    dead: Vec<Moving>,
    /// Due messages with deliveries left, when the group has a retry queue: to it.
    retry: Vec<Moving>,
    /// The earliest deadline of a message in flight that is not due yet.
    next_due_ms: Option<i64>,
}

/// A message a plan hands out, with what planning already parsed out of its record.
struct Planned {
    message: StoredMessage,
    /// Deliveries it had before it came to this queue (a retry copy's earlier attempts).
    before: u32,
    /// Its body's size, for the traffic counters.
    body_len: usize,
}

/// State of one queue, copied out of the state machine for planning.
struct QueueInput {
    queue: u32,
    min: u64,
    end: u64,
    cursor: Option<u64>,
    /// In flight and due, `(offset, epoch, attempt)`, by offset.
    due: Vec<(u64, u32, u32)>,
    /// Lowest offset in flight, due or not.
    first_inflight: Option<u64>,
    next_due_ms: Option<i64>,
}

impl BrokerGroup {
    /// The lock receives of `(group, topic)` take turns on.
    fn pop_lock(&self, group: &str, topic: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.pop_locks.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((group.to_string(), topic.to_string())).or_default().clone()
    }

    /// Hands out up to `req.max` messages, waiting until `req.deadline` for the first one. This
    /// node must lead the group.
    pub async fn receive(&self, req: &ReceiveRequest<'_>) -> Result<Vec<Delivery>, BrokerError> {
        let mut sources = vec![Source {
            topic: req.topic,
            queues: req.queues.clone(),
            filter: req.filter.clone(),
            retry: false,
        }];
        if let Some(r) = &req.moves.retry {
            let retry = Source { topic: &r.topic, queues: vec![r.queue], filter: Filter::All, retry: true };
            if req.retry_first {
                sources.insert(0, retry);
            } else {
                sources.push(retry);
            }
        }
        let mut replans = 0;
        'look: loop {
            // Subscribe before planning so nothing that happens after the plan is missed.
            let mut ends: Vec<_> = sources
                .iter()
                .flat_map(|s| s.queues.iter().map(|q| self.data.notifier().subscribe(s.topic, *q)))
                .collect();
            let acked = self.pop_changed.notified();
            tokio::pin!(acked);
            acked.as_mut().enable();
            let mut next_due_ms: Option<i64> = None;
            for src in &sources {
                match self.receive_from(req, src).await? {
                    Step::Delivered(out) => return Ok(out),
                    Step::Moved => continue 'look,
                    Step::Stale(reason) => {
                        replans += 1;
                        tracing::debug!(group = %self.group.id(), reason = %reason, "receive plan was stale; planning again");
                        if replans >= REPLANS_MAX {
                            return Err(BrokerError::Unavailable(format!(
                                "the queues changed too often to hand out messages ({reason}); retry"
                            )));
                        }
                        continue 'look;
                    }
                    Step::Idle(due) => next_due_ms = next_due_ms.into_iter().chain(due).min(),
                }
            }
            let now = Instant::now();
            if now >= req.deadline {
                return Ok(Vec::new());
            }
            let wake = match next_due_ms {
                Some(due) => req.deadline.min(now + Duration::from_millis((due - now_ms()).max(1) as u64)),
                None => req.deadline,
            };
            let changed = futures::future::select_all(ends.iter_mut().map(|rx| rx.changed().boxed()));
            tokio::select! {
                _ = changed => {}
                () = &mut acked => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// One look at `src`: plan, move what must move, propose the plan.
    async fn receive_from(&self, req: &ReceiveRequest<'_>, src: &Source<'_>) -> Result<Step, BrokerError> {
        let lock = self.pop_lock(req.group, src.topic);
        let _turn = lock.lock().await;
        let plan = self.plan(req, src).await?;
        if !plan.gone.is_empty() {
            self.settle(req.group, src.topic, AckOp::Ack, plan.gone.clone()).await?;
        }
        // Dead letters and retries first, then plan again on the state without them.
        for (kind, items) in [(MoveKind::DeadLetter, &plan.dead), (MoveKind::Retry, &plan.retry)] {
            if let (false, Some(to)) = (items.is_empty(), req.moves.to(kind)) {
                return Ok(if self.move_out(req.group, src.topic, kind, to, items).await? {
                    Step::Moved
                } else {
                    Step::Stale(format!("{kind:?} move raced an ack or a redelivery"))
                });
            }
        }
        if plan.queues.is_empty() {
            return Ok(Step::Idle(plan.next_due_ms));
        }
        let cmd = PopCmd {
            group: req.group.to_string(),
            topic: src.topic.to_string(),
            now_ms: now_ms(),
            invisible_ms: req.invisible_ms,
            queues: plan.queues,
        };
        match self.group.write(Command::Pop(cmd)).await? {
            Response::Popped(popped) => {
                let mut messages = plan.messages;
                let mut sizes = Vec::with_capacity(popped.len());
                let out: Vec<Delivery> = popped
                    .into_iter()
                    .filter_map(|p| {
                        let Planned { message, before, body_len } = messages.remove(&(p.queue, p.offset))?;
                        sizes.push((p.queue, body_len));
                        Some(Delivery {
                            queue: p.queue,
                            message,
                            inflight: p.inflight,
                            attempt: before + p.inflight.attempt,
                            retry: src.retry,
                        })
                    })
                    .collect();
                self.traffic.count(Direction::Get, src.topic, sizes);
                Ok(if out.is_empty() { Step::Idle(plan.next_due_ms) } else { Step::Delivered(out) })
            }
            Response::Rejected(reason) => Ok(Step::Stale(reason)),
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }

    /// Acks, changes invisible time or renews handed-out messages of `(group, topic)`: one
    /// result per item. This node must lead the group.
    pub async fn settle(
        &self,
        group: &str,
        topic: &str,
        op: AckOp,
        items: Vec<(u32, u64, u32)>,
    ) -> Result<Vec<AckResult>, BrokerError> {
        let n = items.len();
        let r = match op {
            AckOp::Ack => self.acks.ack(group.to_string(), topic.to_string(), items).await?,
            _ => {
                let cmd = raftmq_storage::broker::pop::AckCmd {
                    group: group.to_string(),
                    topic: topic.to_string(),
                    now_ms: now_ms(),
                    op,
                    items,
                };
                match self.group.write(Command::Ack(cmd)).await? {
                    Response::Acked(r) => r,
                    other => return Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
                }
            }
        };
        if r.len() != n {
            return Err(BrokerError::Internal(format!("{} results for {n} items", r.len())));
        }
        // A FIFO queue waits for its in-flight messages; wake receives to look again.
        self.pop_changed.notify_waiters();
        Ok(r)
    }

    /// Plans a receive from `src` on the current state.
    async fn plan(&self, req: &ReceiveRequest<'_>, src: &Source<'_>) -> Result<Plan, BrokerError> {
        let now = now_ms();
        let inputs = self.data.read(|s| {
            let tid = s.topic_id(src.topic)?;
            let key_group = req.group.to_string();
            Some((
                tid,
                src.queues
                    .iter()
                    .map(|&queue| {
                        let qs = s.queues.get(&(tid, queue)).copied().unwrap_or_default();
                        let pq = s.pops.queues.get(&(key_group.clone(), tid, queue));
                        let mut due = Vec::new();
                        let mut next_due_ms: Option<i64> = None;
                        for (o, f) in pq.map(|p| &p.inflight).into_iter().flatten() {
                            if f.deadline_ms <= now {
                                if due.len() < req.max {
                                    due.push((*o, f.epoch, f.attempt));
                                }
                            } else {
                                next_due_ms =
                                    Some(next_due_ms.map_or(f.deadline_ms, |d| d.min(f.deadline_ms)));
                            }
                        }
                        QueueInput {
                            queue,
                            min: qs.min.min(qs.next),
                            end: qs.next,
                            cursor: pq.map(|p| p.cursor),
                            due,
                            first_inflight: pq.and_then(|p| p.inflight.keys().next().copied()),
                            next_due_ms,
                        }
                    })
                    .collect::<Vec<_>>(),
            ))
        });
        let Some((tid, inputs)) = inputs else {
            // The topic never stored a message in this group. A new group still records where
            // it starts (offset 0), so messages arriving from now on are not skipped.
            return Ok(Plan {
                queues: src
                    .queues
                    .iter()
                    .map(|&queue| PopQueueCmd {
                        queue,
                        expect_cursor: 0,
                        advance_to: 0,
                        take: Vec::new(),
                        redeliver: Vec::new(),
                    })
                    .collect(),
                ..Plan::default()
            });
        };
        let data = self.data.clone();
        let from = if src.retry { Start::Min } else { req.start };
        let (filter, max, fifo) = (src.filter.clone(), req.max, req.fifo);
        let moves = req.moves.clone();
        self.blocking(move || {
            let (store, log, group) = (data.store(), data.log(), data.group());
            let mut plan = Plan::default();
            let mut left = max;
            let mut bytes = 0usize;
            for q in inputs {
                plan.next_due_ms = plan.next_due_ms.into_iter().chain(q.next_due_ms).min();
                let cursor = match q.cursor {
                    Some(c) => c,
                    None => from.resolve(store, log, group, tid, q.queue, q.min, q.end)?,
                };
                let mut cmd = PopQueueCmd {
                    queue: q.queue,
                    expect_cursor: cursor,
                    advance_to: cursor,
                    take: Vec::new(),
                    redeliver: Vec::new(),
                };
                // An orderly queue hands out nothing new while a message is in flight, and hands
                // messages out again only from its first one in flight, in order.
                let blocked = fifo && q.first_inflight.is_some();
                let in_order = !fifo || q.due.first().map(|d| d.0) == q.first_inflight;
                for &(o, epoch, attempt) in &q.due {
                    if left == 0 || bytes >= RECEIVE_BYTES_MAX || !in_order {
                        break;
                    }
                    let units = reader::cq_units(store, group, tid, q.queue, o, o + 1, 1)?;
                    let found = reader::messages(log, &units)?.pop().filter(|_| o >= q.min);
                    let (before, body_len) = match &found {
                        Some(m) => {
                            let view = RecordView::parse(&m.record)?;
                            (attempts_before(&view), view.body.len())
                        }
                        None => (0, 0),
                    };
                    let attempt = before + attempt;
                    match (found, moves.kind(attempt)) {
                        (Some(message), Some(kind)) => {
                            let to =
                                if kind == MoveKind::DeadLetter { &mut plan.dead } else { &mut plan.retry };
                            to.push(Moving { queue: q.queue, message, epoch, attempt });
                        }
                        (Some(m), None) => {
                            bytes += m.record.len();
                            plan.messages.insert((q.queue, o), Planned { message: m, before, body_len });
                            cmd.redeliver.push((o, epoch));
                            left -= 1;
                        }
                        // Retention removed it: nothing to deliver any more.
                        (None, _) => plan.gone.push((q.queue, o, epoch)),
                    }
                }
                if !blocked && left > 0 && bytes < RECEIVE_BYTES_MAX {
                    let start = cursor.max(q.min);
                    let units = reader::cq_units(store, group, tid, q.queue, start, q.end, SCAN_UNITS_MAX)?;
                    cmd.advance_to = units.last().map_or(start, |(o, _)| o + 1);
                    let wanted: Vec<_> =
                        units.into_iter().filter(|(_, u)| filter.may_match(u.tag_hash)).collect();
                    let found = reader::messages(log, &wanted)?;
                    if let Some((missing, _)) = wanted.get(found.len()) {
                        // Retention removed entries meanwhile: advance no further than what was read.
                        cmd.advance_to = *missing;
                    }
                    for m in found {
                        let view = RecordView::parse(&m.record)?;
                        if !filter.matches(&view) {
                            continue;
                        }
                        let (before, body_len) = (attempts_before(&view), view.body.len());
                        if left == 0 || bytes >= RECEIVE_BYTES_MAX {
                            // Stop here: the rest stays for the next receive.
                            cmd.advance_to = m.offset;
                            break;
                        }
                        bytes += m.record.len();
                        cmd.take.push(m.offset);
                        plan.messages.insert((q.queue, m.offset), Planned { message: m, before, body_len });
                        left -= 1;
                    }
                }
                let changes = q.cursor.is_none()
                    || cmd.advance_to != cmd.expect_cursor
                    || !cmd.take.is_empty()
                    || !cmd.redeliver.is_empty();
                if changes {
                    plan.queues.push(cmd);
                }
            }
            Ok(plan)
        })
        .await
    }
}
