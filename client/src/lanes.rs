//! Coalescing of concurrent sends: one lane per node address. While a lane's requests are in
//! flight, new messages wait and leave together in the next request, so many `send` calls
//! become few `SendMessage` requests. A lone send leaves at once: no linger, no added latency.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use raftmq_proto::rocketmq as pb;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::error::ClientError;
use crate::routes::Routes;

/// Most messages in one coalesced request.
const BATCH_MESSAGES_MAX: usize = 256;
/// Most body bytes in one coalesced request (after its first message).
const BATCH_BYTES_MAX: usize = 1 << 20;
/// Requests a lane keeps in flight at once.
const LANE_REQUESTS_MAX: usize = 8;
/// Messages a lane may hold waiting.
const LANE_QUEUE: usize = 16384;

type Reply = oneshot::Sender<Result<pb::SendResultEntry, ClientError>>;

struct Pending {
    msg: pb::Message,
    reply: Reply,
}

/// The lanes of one producer.
#[derive(Default)]
pub(crate) struct Lanes {
    lanes: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
}

impl Lanes {
    /// Sends `msg` to the node at `addr` through its lane; resolves with the message's result.
    pub(crate) async fn send(
        &self,
        routes: &Arc<Routes>,
        addr: &str,
        msg: pb::Message,
    ) -> Result<pb::SendResultEntry, ClientError> {
        let tx = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            match lanes.get(addr) {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::channel(LANE_QUEUE);
                    tokio::spawn(run_lane(routes.clone(), addr.to_string(), rx));
                    lanes.insert(addr.to_string(), tx.clone());
                    tx
                }
            }
        };
        let (reply, rx) = oneshot::channel();
        tx.send(Pending { msg, reply })
            .await
            .map_err(|_| ClientError::Transport("producer lane closed".into()))?;
        rx.await.map_err(|_| ClientError::Transport("producer lane closed".into()))?
    }
}

async fn run_lane(routes: Arc<Routes>, addr: String, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(LANE_REQUESTS_MAX));
    while let Some(first) = rx.recv().await {
        // A node that did not answer lately: fail what waits at once (nothing was sent), so the
        // producer retries through another node instead of queueing behind hanging requests.
        if routes.avoid(&addr) {
            let mut replies = vec![first.reply];
            while let Ok(p) = rx.try_recv() {
                replies.push(p.reply);
            }
            let e = ClientError::NotSent(format!("node {addr} did not answer lately"));
            fail_all(replies, &e);
            continue;
        }
        // Wait for a request slot first: messages arriving meanwhile join this request.
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        let mut bytes = batch[0].msg.body.len();
        while batch.len() < BATCH_MESSAGES_MAX && bytes < BATCH_BYTES_MAX {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.msg.body.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let (routes, addr) = (routes.clone(), addr.clone());
        tokio::spawn(async move {
            send_batch(&routes, &addr, batch).await;
            drop(permit);
        });
    }
}

/// Sends one request of same-topic runs; answers every waiter.
async fn send_batch(routes: &Routes, addr: &str, batch: Vec<Pending>) {
    // One SendMessage carries one topic: split by topic, keeping order within each.
    let mut by_topic: Vec<(String, Vec<Pending>)> = Vec::new();
    for p in batch {
        let topic = p.msg.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        match by_topic.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, v)) => v.push(p),
            None => by_topic.push((topic, vec![p])),
        }
    }
    for (_, group) in by_topic {
        let (msgs, replies): (Vec<pb::Message>, Vec<Reply>) =
            group.into_iter().map(|p| (p.msg, p.reply)).unzip();
        let n = msgs.len();
        let client = match routes.client(addr) {
            Ok(c) => c,
            Err(e) => {
                fail_all(replies, &e);
                continue;
            }
        };
        let mut client = client;
        match client.send_message(routes.request(pb::SendMessageRequest { messages: msgs })).await {
            Ok(resp) => {
                routes.answered(addr);
                routes.learn(resp.metadata());
                let resp = resp.into_inner();
                if resp.entries.len() != n {
                    let err = match crate::error::check(resp.status.as_ref()) {
                        Err(e) => e,
                        Ok(()) => ClientError::BadResponse(format!(
                            "{} results for {n} messages",
                            resp.entries.len()
                        )),
                    };
                    fail_all(replies, &err);
                    continue;
                }
                for (reply, entry) in replies.into_iter().zip(resp.entries) {
                    let _ = reply.send(Ok(entry));
                }
            }
            Err(s) => {
                routes.failed(addr, &s);
                fail_all(replies, &ClientError::from(s));
            }
        }
    }
}

fn fail_all(replies: Vec<Reply>, e: &ClientError) {
    for r in replies {
        let _ = r.send(Err(e.clone()));
    }
}
