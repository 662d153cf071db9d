//! Consumer offset commits of one broker group, coalesced: every commit goes through the group's
//! Raft log, but many commits arriving together become one entry per consumer group.

use std::collections::BTreeMap;

use raftmq_raft::Group;
use raftmq_storage::Command;
use raftmq_storage::CommitOffsets;
use raftmq_storage::Response;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::error::BrokerError;

struct Commit {
    group: String,
    topic: String,
    queue: u32,
    offset: u64,
    reply: oneshot::Sender<Result<(), BrokerError>>,
}

type Reply = oneshot::Sender<Result<(), BrokerError>>;

/// One consumer group's coalesced commits: the last offset per (topic, queue), and who waits.
type GroupCommits = (BTreeMap<(String, u32), u64>, Vec<Reply>);

/// Handle to a group's offset committer task.
#[derive(Clone)]
pub struct OffsetCommitter {
    tx: mpsc::Sender<Commit>,
}

impl OffsetCommitter {
    /// Starts the committer of `raft`; it stops when every handle is dropped.
    pub fn start(raft: Group) -> Self {
        let (tx, rx) = mpsc::channel(16384);
        tokio::spawn(run(raft, rx));
        Self { tx }
    }

    /// Commits `offset` (the next offset to consume) of `group` on a queue; returns once applied.
    pub async fn commit(
        &self,
        group: String,
        topic: String,
        queue: u32,
        offset: u64,
    ) -> Result<(), BrokerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Commit { group, topic, queue, offset, reply })
            .await
            .map_err(|_| BrokerError::Unavailable("offset committer stopped".into()))?;
        rx.await.map_err(|_| BrokerError::Unavailable("offset committer stopped".into()))?
    }
}

async fn run(raft: Group, mut rx: mpsc::Receiver<Commit>) {
    while let Some(first) = rx.recv().await {
        let mut pending = vec![first];
        while pending.len() < 4096
            && let Ok(c) = rx.try_recv()
        {
            pending.push(c);
        }
        // One entry per consumer group; the last commit of a queue wins.
        let mut by_group: BTreeMap<String, GroupCommits> = BTreeMap::new();
        for c in pending {
            let e = by_group.entry(c.group).or_default();
            e.0.insert((c.topic, c.queue), c.offset);
            e.1.push(c.reply);
        }
        for (group, (offsets, replies)) in by_group {
            let offsets = offsets.into_iter().map(|((t, q), o)| (t, q, o)).collect();
            let raft = raft.clone();
            tokio::spawn(async move {
                let r = match raft.write(Command::CommitOffsets(CommitOffsets { group, offsets })).await {
                    Ok(Response::Done) => Ok(()),
                    Ok(other) => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
                    Err(e) => Err(BrokerError::from(e)),
                };
                for reply in replies {
                    let _ = reply.send(r.clone());
                }
            });
        }
    }
}
