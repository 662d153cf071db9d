//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): an orderly 4.x consumer holds the queues it
//! consumes, one broker at a time; the locks are the broker group's (`broker::locks`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;

use super::codec::Command;
use super::codes::request as code;
use super::context::Remoting;
use super::namesrv::json_response;
use super::queues::broker_queues;
use super::status;
use crate::error::BrokerError;

/// How long a forwarded lock request may take.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Most queues one request may name.
const QUEUES_MAX: usize = 4096;

/// A queue as the 4.x client writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct MessageQueue {
    topic: String,
    broker_name: String,
    queue_id: i32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockBody {
    consumer_group: String,
    client_id: String,
    #[serde(default)]
    mq_set: Vec<MessageQueue>,
}

#[derive(Serialize)]
struct Locked {
    #[serde(rename = "lockOKMQSet")]
    lock_ok: Vec<MessageQueue>,
}

impl Remoting {
    /// Serves LOCK_BATCH_MQ or UNLOCK_BATCH_MQ from `peer`.
    pub async fn lock(&self, peer: SocketAddr, req: Command) -> Command {
        let res = self.lock_checked(peer, &req).await;
        status::answer(&req, res)
    }

    async fn lock_checked(&self, peer: SocketAddr, req: &Command) -> Result<Command, BrokerError> {
        let body: LockBody = serde_json::from_slice(&req.body)
            .map_err(|e| BrokerError::bad_request(format!("lock body is not valid: {e}")))?;
        if body.mq_set.len() > QUEUES_MAX || body.client_id.is_empty() {
            return Err(BrokerError::bad_request("a lock names a client and at most 4096 queues"));
        }
        let Some(first) = body.mq_set.first() else {
            return Ok(json_response(req, &Locked { lock_ok: Vec::new() }));
        };
        let g = self.group_named(&first.broker_name).ok_or_else(|| {
            BrokerError::bad_request(format!("there is no broker named {:?}", first.broker_name))
        })?;
        let Some(b) = self.local_leader(g).cloned() else {
            return Ok(self.forward(g, peer, req.clone(), LOCK_TIMEOUT).await);
        };
        // The 4.x queue ids of this broker, as the group's queue ids.
        let mut queues = Vec::new();
        for mq in body.mq_set.iter().filter(|q| q.broker_name == first.broker_name) {
            let topic = self.topic(&mq.topic).await?;
            let global =
                usize::try_from(mq.queue_id).ok().and_then(|i| broker_queues(&topic, g).get(i).copied());
            if let Some(q) = global {
                queues.push((mq.clone(), (topic.name.clone(), q)));
            }
        }
        let lock = req.code == code::LOCK_BATCH_MQ;
        let held = b
            .lock_queues(
                &body.consumer_group,
                &body.client_id,
                queues.iter().map(|(_, q)| q.clone()).collect(),
                lock,
            )
            .await?;
        if !lock {
            return Ok(status::ok(req));
        }
        let lock_ok = queues.into_iter().filter(|(_, q)| held.contains(q)).map(|(mq, _)| mq).collect();
        Ok(json_response(req, &Locked { lock_ok }))
    }
}
