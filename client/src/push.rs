//! [`PushConsumer`]: the SDK receives, a listener consumes.
//!
//! One receiver task per (topic, broker group) long-polls `ReceiveMessage` and hands messages to
//! `thread_count` consume threads through a buffer of at most `max_cached_messages` (flow
//! control: a full buffer stops receiving). A listener's `Success` acks the message; `Failure`
//! makes it visible again after the retry schedule's delay for its attempt, so it comes back
//! with `delivery_attempt + 1`.
//!
//! Orderly consumption (a FIFO consumer group): the broker hands out a queue's next message only
//! after the previous one is settled, and this consumer runs one receive batch of a queue on one
//! thread in order. A failed message is retried right there, about every second (the queue
//! waits), up to `max_delivery_attempts`; then it goes to the group's dead-letter topic and the
//! queue moves on — as RocketMQ's orderly consumers do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::message::MessageView;
use crate::simple::Received;
use crate::simple::SimpleConsumer;
use crate::simple::SimpleConsumerOptions;
use crate::simple::Subscription;
use crate::stop::Stop;

/// What a listener made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Consumed: ack it.
    Success,
    /// Not consumed: deliver it again later.
    Failure,
}

/// The code that consumes messages, run on the consume threads.
pub type Listener = Arc<dyn Fn(&MessageView) -> ConsumeResult + Send + Sync + 'static>;

/// RocketMQ's retry schedule: the delay before attempt `n + 1` after attempt `n` failed.
pub const RETRY_DELAYS_SECS: [u64; 16] =
    [10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200];

/// Push consumer settings.
#[derive(Debug, Clone)]
pub struct PushConsumerOptions {
    /// Access points, `host:port[,...]`.
    pub endpoints: String,
    /// Consumer group.
    pub group: String,
    /// Threads running the listener (RocketMQ's default: 20).
    pub thread_count: usize,
    /// Messages asked for per receive (default 32).
    pub batch_size: u32,
    /// Messages received but not yet consumed, at most (default 1024): flow control.
    pub max_cached_messages: usize,
    /// How long a received message stays invisible to the group while the listener works on it.
    pub invisible: Duration,
    /// Consume one queue's messages in order (for FIFO consumer groups).
    pub orderly: bool,
    /// Delay before a failed message comes back, per attempt; `None` for [`RETRY_DELAYS_SECS`].
    pub retry_delays: Option<Vec<Duration>>,
    /// Orderly only: attempts of a failing message before it goes to the dead-letter topic
    /// (set it to the group's max delivery attempts; default 17).
    pub max_delivery_attempts: u32,
    /// Orderly only: pause between local retries of a failing message (default 1 s).
    pub orderly_retry: Duration,
}

impl PushConsumerOptions {
    /// Defaults for `group` on a cluster reachable at `endpoints`.
    pub fn new(endpoints: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            endpoints: endpoints.into(),
            group: group.into(),
            thread_count: 20,
            batch_size: 32,
            max_cached_messages: 1024,
            invisible: Duration::from_secs(30),
            orderly: false,
            retry_delays: None,
            max_delivery_attempts: 17,
            orderly_retry: Duration::from_secs(1),
        }
    }

    fn retry_delay(&self, attempt: u32) -> Duration {
        let i = attempt.saturating_sub(1) as usize;
        match &self.retry_delays {
            Some(d) if !d.is_empty() => d[i.min(d.len() - 1)],
            _ => Duration::from_secs(RETRY_DELAYS_SECS[i.min(RETRY_DELAYS_SECS.len() - 1)]),
        }
    }
}

/// One unit of work for a consume thread: a message, or (orderly) one queue's batch in order.
struct Work {
    batch: Vec<Received>,
}

/// What becomes of a consumed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Consumed: ack it.
    Ack,
    /// Failed: let it come back after the retry schedule's delay.
    Retry,
    /// Failed every attempt (orderly): to the dead-letter topic.
    DeadLetter,
}

/// What a consume thread decided for one message.
struct Outcome {
    received: Received,
    settle: Settle,
}

/// A running push consumer. Dropping it without [`PushConsumer::shutdown`] stops it too, less
/// politely.
pub struct PushConsumer {
    stop: Stop,
    tasks: Vec<JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl PushConsumer {
    /// Starts consuming `subscriptions` with `listener`.
    pub async fn start(
        opts: PushConsumerOptions,
        subscriptions: Vec<(String, Subscription)>,
        listener: Listener,
    ) -> Result<Self, ClientError> {
        if subscriptions.is_empty() {
            return Err(ClientError::InvalidArgument("subscribe to at least one topic".into()));
        }
        if opts.thread_count == 0 || opts.batch_size == 0 || opts.max_cached_messages == 0 {
            return Err(ClientError::InvalidArgument(
                "thread_count, batch_size and max_cached_messages must be at least 1".into(),
            ));
        }
        let mut sopts = SimpleConsumerOptions::new(opts.endpoints.clone(), opts.group.clone());
        sopts.await_duration = Duration::from_secs(20);
        let consumer = SimpleConsumer::new(sopts)?;
        let opts = Arc::new(opts);
        let stop = Stop::default();
        let buffer = Arc::new(Semaphore::new(opts.max_cached_messages));
        let (work_tx, work_rx) = std::sync::mpsc::channel::<Work>();
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Outcome>();

        let mut threads = Vec::new();
        for i in 0..opts.thread_count {
            let (rx, tx, listener, opts) = (work_rx.clone(), done_tx.clone(), listener.clone(), opts.clone());
            let t = std::thread::Builder::new()
                .name(format!("raftmq-consume-{i}"))
                .spawn(move || consume_thread(&rx, &tx, &listener, &opts))
                .map_err(|e| ClientError::InvalidArgument(format!("cannot start a consume thread: {e}")))?;
            threads.push(t);
        }
        drop(done_tx);

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(settle(consumer.clone(), opts.clone(), buffer.clone(), done_rx)));
        for (topic, sub) in subscriptions {
            let brokers = consumer.routes().readable_brokers(&topic).await?;
            for broker in brokers {
                let r = Receiver {
                    consumer: consumer.clone(),
                    opts: opts.clone(),
                    topic: topic.clone(),
                    sub: sub.clone(),
                    broker,
                    buffer: buffer.clone(),
                    work: work_tx.clone(),
                    stop: stop.clone(),
                };
                tasks.push(tokio::spawn(r.run()));
            }
        }
        Ok(Self { stop, tasks, threads })
    }

    /// Stops receiving, lets the consume threads finish what they hold, and waits for them.
    /// Messages received but not consumed come back to the group after their invisible time.
    pub async fn shutdown(mut self) {
        self.stop.stop();
        let tasks = std::mem::take(&mut self.tasks);
        let threads = std::mem::take(&mut self.threads);
        for t in tasks {
            let _ = t.await;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        self.stop.stop();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Long-polls one broker group for one topic.
struct Receiver {
    consumer: SimpleConsumer,
    opts: Arc<PushConsumerOptions>,
    topic: String,
    sub: Subscription,
    broker: String,
    buffer: Arc<Semaphore>,
    work: std::sync::mpsc::Sender<Work>,
    stop: Stop,
}

impl Receiver {
    async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let want = self.opts.batch_size.min(self.opts.max_cached_messages as u32);
            // Flow control: receive only what the buffer has room for.
            let permits = tokio::select! {
                p = self.buffer.clone().acquire_many_owned(want) => match p { Ok(p) => p, Err(_) => return },
                () = self.stop.stopped() => return,
            };
            let got = tokio::select! {
                r = self.consumer.receive_from_broker(&self.topic, &self.broker, &self.sub, want, self.opts.invisible) => r,
                () = self.stop.stopped() => return,
            };
            match got {
                Ok(msgs) => {
                    backoff = Duration::from_millis(100);
                    // Permits of messages not received go back now; each received one keeps its
                    // permit until it is settled.
                    let n = msgs.len() as u32;
                    permits.forget();
                    self.buffer.add_permits((want - n.min(want)) as usize);
                    if msgs.is_empty() {
                        continue;
                    }
                    if self.opts.orderly {
                        let mut by_queue: BTreeMap<u32, Vec<Received>> = BTreeMap::new();
                        for m in msgs {
                            by_queue.entry(m.message.queue_id).or_default().push(m);
                        }
                        for (_, batch) in by_queue {
                            if self.work.send(Work { batch }).is_err() {
                                return;
                            }
                        }
                    } else {
                        for m in msgs {
                            if self.work.send(Work { batch: vec![m] }).is_err() {
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    drop(permits);
                    tracing::warn!(topic = %self.topic, broker = %self.broker, error = %e, "receive failed; backing off");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.stopped() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn consume_thread(
    rx: &Mutex<std::sync::mpsc::Receiver<Work>>,
    tx: &mpsc::UnboundedSender<Outcome>,
    listener: &Listener,
    opts: &PushConsumerOptions,
) {
    loop {
        let work = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(w) => w,
                Err(_) => return,
            }
        };
        for mut received in work.batch {
            let (settle, attempt) = consume(listener, &received.message, opts);
            // Retried in place: the broker records the attempts the listener saw (a dead
            // letter's RECONSUME_TIME counts them).
            received.message.delivery_attempt = attempt;
            if tx.send(Outcome { received, settle }).is_err() {
                return;
            }
        }
    }
}

/// Runs the listener on one message; orderly, retries it in place until it succeeds or used up
/// its attempts (the listener sees the attempt number rise). What to do, and the last attempt.
fn consume(listener: &Listener, message: &MessageView, opts: &PushConsumerOptions) -> (Settle, u32) {
    let mut view = std::borrow::Cow::Borrowed(message);
    loop {
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener(&view))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(message_id = %view.message_id, "listener panicked; the message will be retried");
                ConsumeResult::Failure
            }
        };
        let attempt = view.delivery_attempt;
        match result {
            ConsumeResult::Success => return (Settle::Ack, attempt),
            ConsumeResult::Failure if !opts.orderly => return (Settle::Retry, attempt),
            ConsumeResult::Failure if attempt >= opts.max_delivery_attempts => {
                return (Settle::DeadLetter, attempt);
            }
            ConsumeResult::Failure => {
                std::thread::sleep(opts.orderly_retry);
                view.to_mut().delivery_attempt += 1;
            }
        }
    }
}

/// Acks consumed messages, postpones failed ones, and frees their buffer room.
async fn settle(
    consumer: SimpleConsumer,
    opts: Arc<PushConsumerOptions>,
    buffer: Arc<Semaphore>,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
) {
    while let Some(o) = rx.recv().await {
        let r = &o.received;
        let outcome = match o.settle {
            Settle::Ack => consumer.ack(r).await,
            Settle::Retry => {
                let delay = opts.retry_delay(r.message.delivery_attempt);
                consumer.change_invisible_duration(r, delay).await.map(|_| ())
            }
            Settle::DeadLetter => consumer.dead_letter(r).await,
        };
        if let Err(e) = outcome {
            // The message comes back after its invisible time: at least once, never lost.
            tracing::warn!(message_id = %r.message.message_id, error = %e, "settling a message failed; it will be redelivered");
        }
        buffer.add_permits(1);
    }
}
