//! [`BroadcastConsumer`]: every consumer of a BROADCASTING group gets every message.
//!
//! Progress is the consumer's own: it pulls each queue by offset and keeps its offsets in a
//! local file (written every second and on shutdown, atomically by rename), so a restarted
//! consumer continues where it stopped. As in RocketMQ, broadcast messages are not retried: a
//! listener failure is logged and the consumer moves on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::consumer::OffsetPolicy;
use crate::consumer::PullConsumer;
use crate::consumer::PullConsumerOptions;
use crate::error::ClientError;
use crate::push::ConsumeResult;
use crate::push::Listener;
use crate::simple::Subscription;
use crate::stop::Stop;

/// How often offsets are written to the file.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Broadcast consumer settings.
#[derive(Debug, Clone)]
pub struct BroadcastConsumerOptions {
    /// Access points, `host:port[,...]`.
    pub endpoints: String,
    /// Consumer group (for naming; progress is local).
    pub group: String,
    /// Where this consumer keeps its offsets.
    pub offset_file: PathBuf,
    /// Where to start on a queue the file does not know (RocketMQ's default: the end).
    pub from: OffsetPolicy,
    /// Messages per pull.
    pub batch_size: u32,
}

impl BroadcastConsumerOptions {
    /// Defaults: offsets in `offset_file`, new queues read from their end.
    pub fn new(
        endpoints: impl Into<String>,
        group: impl Into<String>,
        offset_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            endpoints: endpoints.into(),
            group: group.into(),
            offset_file: offset_file.into(),
            from: OffsetPolicy::End,
            batch_size: 32,
        }
    }
}

/// Offsets per (topic, queue): the next offset to consume.
type Offsets = BTreeMap<(String, u32), u64>;

/// A running broadcast consumer.
pub struct BroadcastConsumer {
    stop: Stop,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BroadcastConsumer {
    /// Starts reading every queue of `topic` with `listener`.
    pub async fn start(
        opts: BroadcastConsumerOptions,
        topic: &str,
        sub: Subscription,
        listener: Listener,
    ) -> Result<Self, ClientError> {
        let file = opts.offset_file.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&file))
            .await
            .map_err(|e| ClientError::InvalidArgument(format!("reading the offset file failed: {e}")))??;
        let offsets = Arc::new(std::sync::Mutex::new(loaded));
        let pull = PullConsumer::new(PullConsumerOptions::new(opts.endpoints.clone(), opts.group.clone()))?;
        let stop = Stop::default();
        let mut tasks = Vec::new();
        for q in pull.queues(topic).await? {
            let start =
                offsets.lock().unwrap_or_else(|e| e.into_inner()).get(&(topic.to_string(), q)).copied();
            let start = match start {
                Some(o) => o,
                None => pull.query_offset(topic, q, opts.from).await?,
            };
            offsets.lock().unwrap_or_else(|e| e.into_inner()).insert((topic.to_string(), q), start);
            let (pull, topic, sub, listener, offsets, stop, batch) = (
                pull.clone(),
                topic.to_string(),
                sub.clone(),
                listener.clone(),
                offsets.clone(),
                stop.clone(),
                opts.batch_size,
            );
            tasks.push(tokio::spawn(async move {
                let mut offset = start;
                loop {
                    let pulled = tokio::select! {
                        p = pull.pull_filtered(&topic, q, offset, batch, Duration::from_secs(5), &sub) => p,
                        () = stop.stopped() => return,
                    };
                    let pulled = match pulled {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(%topic, queue = q, error = %e, "broadcast pull failed; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                                () = stop.stopped() => return,
                            }
                        }
                    };
                    let (msgs, next) = (pulled.messages, pulled.next_offset);
                    let l = listener.clone();
                    let consumed = tokio::task::spawn_blocking(move || {
                        for m in &msgs {
                            if l(m) == ConsumeResult::Failure {
                                tracing::warn!(message_id = %m.message_id, "broadcast message failed; not retried");
                            }
                        }
                    })
                    .await;
                    if consumed.is_err() {
                        tracing::error!(%topic, queue = q, "listener panicked; skipping the batch");
                    }
                    offset = next;
                    offsets.lock().unwrap_or_else(|e| e.into_inner()).insert((topic.clone(), q), offset);
                }
            }));
        }
        let (file, offs, st) = (opts.offset_file.clone(), offsets.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let stopped = tokio::select! {
                    () = tokio::time::sleep(PERSIST_EVERY) => false,
                    () = st.stopped() => true,
                };
                let snapshot = offs.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let file = file.clone();
                match tokio::task::spawn_blocking(move || save(&file, &snapshot)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot save broadcast offsets"),
                    Err(e) => tracing::warn!(error = %e, "cannot save broadcast offsets"),
                }
                if stopped {
                    return;
                }
            }
        }));
        Ok(Self { stop, tasks })
    }

    /// Stops, after writing the offsets one last time.
    pub async fn shutdown(self) {
        self.stop.stop();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn load(path: &std::path::Path) -> Result<Offsets, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Offsets::new()),
        Err(e) => return Err(ClientError::InvalidArgument(format!("offset file {}: {e}", path.display()))),
    };
    let mut out = Offsets::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let parsed = match parts.as_slice() {
            [t, q, o] => {
                q.parse::<u32>().ok().zip(o.parse::<u64>().ok()).map(|(q, o)| ((t.to_string(), q), o))
            }
            _ => None,
        };
        let Some((k, v)) = parsed else {
            return Err(ClientError::InvalidArgument(format!(
                "offset file {} line {}: expected `topic queue offset`, found {line:?}",
                path.display(),
                n + 1
            )));
        };
        out.insert(k, v);
    }
    Ok(out)
}

fn save(path: &std::path::Path, offsets: &Offsets) -> std::io::Result<()> {
    let mut text = String::new();
    for ((t, q), o) in offsets {
        text.push_str(&format!("{t} {q} {o}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}
