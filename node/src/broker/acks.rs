//! Acks of one broker group, coalesced: every ack goes through the group's Raft log, but acks
//! arriving together become one entry per (consumer group, topic). Consumers ack one message
//! at a time; without this, each would cost a log entry of its own.

use std::collections::BTreeMap;

use raftmq_raft::Group;
use raftmq_storage::Command;
use raftmq_storage::Response;
use raftmq_storage::broker::pop::AckCmd;
use raftmq_storage::broker::pop::AckOp;
use raftmq_storage::broker::pop::AckResult;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::error::BrokerError;

type Reply = oneshot::Sender<Result<Vec<AckResult>, BrokerError>>;

struct Acks {
    group: String,
    topic: String,
    items: Vec<(u32, u64, u32)>,
    reply: Reply,
}

/// Handle to a broker group's ack task.
#[derive(Clone)]
pub struct AckBatcher {
    tx: mpsc::Sender<Acks>,
}

impl AckBatcher {
    /// Starts the ack task of `raft`; it stops when every handle is dropped.
    pub fn start(raft: Group) -> Self {
        let (tx, rx) = mpsc::channel(16384);
        tokio::spawn(run(raft, rx));
        Self { tx }
    }

    /// Acks `items` `(queue, offset, epoch)` of `(group, topic)`; one result per item, once
    /// applied.
    pub async fn ack(
        &self,
        group: String,
        topic: String,
        items: Vec<(u32, u64, u32)>,
    ) -> Result<Vec<AckResult>, BrokerError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || BrokerError::Unavailable("ack task stopped".into());
        self.tx.send(Acks { group, topic, items, reply }).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn run(raft: Group, mut rx: mpsc::Receiver<Acks>) {
    while let Some(first) = rx.recv().await {
        let mut pending = vec![first];
        while pending.len() < 4096
            && let Ok(a) = rx.try_recv()
        {
            pending.push(a);
        }
        let mut by_target: BTreeMap<(String, String), Vec<Acks>> = BTreeMap::new();
        for a in pending {
            by_target.entry((a.group.clone(), a.topic.clone())).or_default().push(a);
        }
        for ((group, topic), acks) in by_target {
            let raft = raft.clone();
            tokio::spawn(async move {
                let items = acks.iter().flat_map(|a| a.items.iter().copied()).collect();
                let cmd = AckCmd { group, topic, now_ms: now_ms(), op: AckOp::Ack, items };
                let r = match raft.write(Command::Ack(cmd)).await {
                    Ok(Response::Acked(r)) => Ok(r),
                    Ok(other) => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
                    Err(e) => Err(BrokerError::from(e)),
                };
                let mut results = r.map(Vec::into_iter);
                for a in acks {
                    let mine = match &mut results {
                        Ok(it) => Ok(it.by_ref().take(a.items.len()).collect()),
                        Err(e) => Err(e.clone()),
                    };
                    let _ = a.reply.send(mine);
                }
            });
        }
    }
}
