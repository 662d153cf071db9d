//! The history a chaos run leaves behind: one JSON object per line, appended by the workload
//! (sends and deliveries) and by the fault scripts (fault windows). The checker reads it back.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// One line of the history. `at` is wall-clock ms since the epoch (all writers share a machine,
/// or at least a synchronized clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Event {
    /// A send was started. `id` names this attempt; `body` is unique per logical message (a FIFO
    /// producer that retries an unknown send reuses the body with a new `id`).
    Invoke {
        /// Attempt id.
        id: String,
        /// Topic.
        topic: String,
        /// Message body (text).
        body: String,
        /// FIFO message group, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// When.
        at: i64,
    },
    /// The broker acknowledged the send: a quorum stored it.
    Ok {
        /// Attempt id.
        id: String,
        /// Queue offset the broker reported.
        offset: u64,
        /// When.
        at: i64,
    },
    /// The broker refused the send: nothing was stored by this attempt.
    Fail {
        /// Attempt id.
        id: String,
        /// Why.
        error: String,
        /// When.
        at: i64,
    },
    /// The send's outcome is not known (timeout, connection lost): it may or may not be stored.
    Unknown {
        /// Attempt id.
        id: String,
        /// Why.
        error: String,
        /// When.
        at: i64,
    },
    /// A consumer received a message.
    Recv {
        /// Topic.
        topic: String,
        /// Queue id.
        queue: u32,
        /// Queue offset.
        offset: u64,
        /// Message body (text).
        body: String,
        /// When.
        at: i64,
    },
    /// A fault began (`phase` start) or was healed (`phase` end).
    Fault {
        /// `start` or `end`.
        phase: FaultPhase,
        /// What was done: kill, restart, pause, resume, partition, heal, ...
        action: String,
        /// The node, link or `all`.
        target: String,
        /// When.
        at: i64,
    },
    /// The workload finished (sends stopped, consumers drained or gave up).
    End {
        /// Whether every acknowledged message was seen before the drain deadline.
        drained: bool,
        /// When.
        at: i64,
    },
}

/// Beginning or end of a fault window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPhase {
    /// The fault was injected.
    Start,
    /// It was healed.
    End,
}

/// Reads a history file; a line that does not parse is an error naming its line number.
pub fn read(path: &Path) -> anyhow::Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a history event", path.display(), i + 1))
        })
        .collect()
}

/// Appends events to a history file from many tasks, in the order they are recorded.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Event>,
}

impl Recorder {
    /// Opens `path` for appending and starts the writer task; await the returned handle after
    /// dropping every recorder to flush the file.
    pub async fn open(path: &Path) -> anyhow::Result<(Self, tokio::task::JoinHandle<anyhow::Result<()>>)> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let writer = tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(file);
            while let Some(ev) = rx.recv().await {
                let mut line = serde_json::to_vec(&ev)?;
                line.push(b'\n');
                out.write_all(&line).await?;
            }
            out.flush().await?;
            Ok(())
        });
        Ok((Self { tx }, writer))
    }

    /// Records one event.
    pub fn record(&self, ev: Event) {
        // The writer only stops once every recorder is gone.
        let _ = self.tx.send(ev);
    }
}
