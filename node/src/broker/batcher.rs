//! The write path of one broker group: messages from many requests become one Raft entry.
//!
//! Natural batching: while no proposal is in flight, whatever is queued is proposed at once (a
//! lone synchronous send pays no linger); while proposals are in flight, the batcher gathers for
//! at most `linger` or until `batch_bytes_max`. A send is acknowledged only after its entry is
//! committed (a quorum fsynced it) and applied. Bytes waiting or in flight are bounded: past the
//! bound (and while the node is over its memory budget, see `flow`) a send is refused with
//! TOO_MANY_REQUESTS and a hint of when to try again, instead of queueing without end.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftmq_raft::Group;
use raftmq_storage::AppendBatch;
use raftmq_storage::Command;
use raftmq_storage::Response;
use raftmq_storage::broker::record::BatchBuilder;
use raftmq_storage::broker::record::NewMessage;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use super::flow::Flow;
use super::flow::drain_hint_ms;
use super::flow::throttled;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// Tuning of a group's write path.
#[derive(Debug, Clone)]
pub struct BatcherOptions {
    /// Most bytes of messages in one Raft entry.
    pub batch_bytes_max: usize,
    /// Longest wait for more messages while earlier proposals are in flight.
    pub linger: Duration,
    /// Most bytes accepted but not yet acknowledged, per group.
    pub inflight_bytes_max: usize,
    /// Most proposals in flight at once, per group.
    pub inflight_proposals_max: usize,
}

impl Default for BatcherOptions {
    fn default() -> Self {
        Self {
            batch_bytes_max: 512 << 10,
            linger: Duration::from_millis(1),
            inflight_bytes_max: 64 << 20,
            inflight_proposals_max: 16,
        }
    }
}

/// Counters of a group's write path.
#[derive(Debug, Default)]
pub struct BatcherStats {
    /// Entries proposed.
    pub proposals: AtomicU64,
    /// Messages proposed.
    pub messages: AtomicU64,
    /// Sends refused because the in-flight bound was reached.
    pub rejected: AtomicU64,
    /// Bytes of messages committed and applied.
    pub applied_bytes: AtomicU64,
    /// How fast the backlog drains, bytes per second (smoothed by the flow sampler).
    pub drain_bytes_per_sec: AtomicU64,
    /// Appends answered, and their total time from arrival to answer, microseconds.
    pub appends: AtomicU64,
    /// See `appends`.
    pub append_micros: AtomicU64,
    /// Total time of proposals from submit to apply, microseconds.
    pub proposal_micros: AtomicU64,
}

/// Where an appended message landed: its queue offset, and its place in the CommitLog (the log
/// entry and its position among the entry's records), which locates it without any index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Queue offset (0 for a delayed or half message, which gets one later).
    pub offset: u64,
    /// Log index of the entry holding it.
    pub log_index: u64,
    /// Its ordinal among the records of that entry.
    pub ordinal: u32,
}

/// Most records one entry may carry: a record's place is its ordinal in 16 bits.
pub const RECORDS_PER_ENTRY_MAX: u32 = u16::MAX as u32;

struct Pending {
    msgs: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<Appended>, BrokerError>>,
    permit: OwnedSemaphorePermit,
}

/// Handle to a group's batcher task.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
    bytes: Arc<Semaphore>,
    stats: Arc<BatcherStats>,
    bytes_max: usize,
    flow: Arc<Flow>,
}

impl Batcher {
    /// Starts the batcher of `group`; it stops when every handle is dropped. `flow` holds the
    /// node's memory budget, shared by every group.
    pub fn start(group: Group, store_host: String, opts: BatcherOptions, flow: Arc<Flow>) -> Batcher {
        let (tx, rx) = mpsc::channel(65536);
        let bytes = Arc::new(Semaphore::new(opts.inflight_bytes_max));
        let stats = Arc::new(BatcherStats::default());
        let bytes_max = opts.inflight_bytes_max;
        tokio::spawn(run(group, store_host, opts, rx, stats.clone()));
        Batcher { tx, bytes, stats, bytes_max, flow }
    }

    /// Bytes accepted and not yet acknowledged.
    pub fn backlog_bytes(&self) -> u64 {
        self.bytes_max.saturating_sub(self.bytes.available_permits()) as u64
    }

    /// The backlog bound, bytes.
    pub fn backlog_max_bytes(&self) -> u64 {
        self.bytes_max as u64
    }

    /// A TOO_MANY_REQUESTS for a full backlog, hinting how long it takes to drain.
    fn backlog_full(&self, what: String) -> BrokerError {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let rate = self.stats.drain_bytes_per_sec.load(Ordering::Relaxed);
        throttled(what, drain_hint_ms(self.backlog_bytes(), rate))
    }

    /// Appends `msgs` and waits until they are committed and applied; returns where each landed.
    pub async fn append(&self, msgs: Vec<NewMessage>) -> Result<Vec<Appended>, BrokerError> {
        if msgs.len() > RECORDS_PER_ENTRY_MAX as usize {
            return Err(BrokerError::bad_request(format!(
                "{} messages in one request; the limit is {RECORDS_PER_ENTRY_MAX}",
                msgs.len()
            )));
        }
        let size: usize = msgs.iter().map(|m| m.encoded_len() + 4).sum();
        if size > self.bytes_max {
            return Err(BrokerError::bad_request(format!(
                "request of {size} bytes exceeds the write buffer ({})",
                self.bytes_max
            )));
        }
        self.flow.admit()?;
        let permit = match self.bytes.clone().try_acquire_many_owned(size as u32) {
            Ok(p) => p,
            Err(_) => {
                return Err(self.backlog_full(format!(
                    "the broker group has {} MiB of writes waiting for their quorum (its limit)",
                    self.backlog_bytes() >> 20
                )));
            }
        };
        let t0 = std::time::Instant::now();
        let (reply, rx) = oneshot::channel();
        if self.tx.try_send(Pending { msgs, reply, permit }).is_err() {
            return Err(self.backlog_full("the broker group's write queue is full".into()));
        }
        let r = rx.await.map_err(|_| BrokerError::Unavailable("the broker group's writer stopped".into()))?;
        self.stats.appends.fetch_add(1, Ordering::Relaxed);
        self.stats.append_micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        r
    }

    /// The batcher's counters.
    pub fn stats(&self) -> &Arc<BatcherStats> {
        &self.stats
    }
}

async fn run(
    group: Group,
    store_host: String,
    opts: BatcherOptions,
    mut rx: mpsc::Receiver<Pending>,
    stats: Arc<BatcherStats>,
) {
    let proposals = Arc::new(Semaphore::new(opts.inflight_proposals_max));
    // Store times never go back on this leader, even if the wall clock does.
    let last_ms = Arc::new(AtomicI64::new(0));
    // A request held back from the previous entry (it would not have fitted) goes first.
    let mut pending: Option<Pending> = None;
    loop {
        let first = match pending.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut builder = BatchBuilder::new();
        let mut waiters = Vec::new();
        add(&mut builder, &mut waiters, first);
        // A request that would not fit waits for the next entry.
        let mut held: Option<Pending> = None;
        while builder.len() < opts.batch_bytes_max
            && let Ok(p) = rx.try_recv()
        {
            if !fits(&builder, &p) {
                held = Some(p);
                break;
            }
            add(&mut builder, &mut waiters, p);
        }
        let busy = proposals.available_permits() < opts.inflight_proposals_max;
        if held.is_none() && busy && builder.len() < opts.batch_bytes_max {
            let deadline = tokio::time::Instant::now() + opts.linger;
            while builder.len() < opts.batch_bytes_max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) if fits(&builder, &p) => add(&mut builder, &mut waiters, p),
                    Ok(Some(p)) => {
                        held = Some(p);
                        break;
                    }
                    _ => break,
                }
            }
        }
        let Ok(permit) = proposals.clone().acquire_owned().await else { return };
        let store_ms = now_ms().max(last_ms.load(Ordering::Relaxed));
        last_ms.store(store_ms, Ordering::Relaxed);
        stats.proposals.fetch_add(1, Ordering::Relaxed);
        stats.messages.fetch_add(u64::from(builder.count()), Ordering::Relaxed);
        let bytes = builder.len() as u64;
        let cmd = Command::Append(AppendBatch {
            store_ms,
            store_host: store_host.clone(),
            batch: builder.finish(),
        });
        let group = group.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let t0 = std::time::Instant::now();
            let result = group.write_at(cmd).await;
            stats.proposal_micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
            if result.is_ok() {
                stats.applied_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            drop(permit);
            let mut offsets = match result {
                Ok((log_index, Response::Appended(o))) => Ok((log_index, o.into_iter())),
                Ok((_, Response::Rejected(e))) => {
                    Err(BrokerError::Internal(format!("append rejected by apply: {e}")))
                }
                Ok((_, other)) => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
                Err(e) => Err(BrokerError::from(e)),
            };
            let mut ordinal = 0u32;
            for (n, reply, _permit) in waiters {
                let r = match &mut offsets {
                    Ok((log_index, it)) => Ok(it
                        .by_ref()
                        .take(n)
                        .map(|offset| {
                            let a = Appended { offset, log_index: *log_index, ordinal };
                            ordinal += 1;
                            a
                        })
                        .collect()),
                    Err(e) => Err(e.clone()),
                };
                let _ = reply.send(r);
            }
        });
        if let Some(p) = held {
            pending = Some(p);
        }
    }
}

/// Whether `p`'s messages still fit in `builder`'s entry (by record count).
fn fits(builder: &BatchBuilder, p: &Pending) -> bool {
    builder.count() as usize + p.msgs.len() <= RECORDS_PER_ENTRY_MAX as usize
}

/// A request waiting for its entry: its message count, where to answer, and its share of the
/// in-flight byte bound (released with the answer).
type Waiter = (usize, oneshot::Sender<Result<Vec<Appended>, BrokerError>>, OwnedSemaphorePermit);

fn add(builder: &mut BatchBuilder, waiters: &mut Vec<Waiter>, p: Pending) {
    for m in &p.msgs {
        builder.push(m);
    }
    waiters.push((p.msgs.len(), p.reply, p.permit));
}
