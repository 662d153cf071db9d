//! Queue locks of orderly consumers, through the broker group's log (see
//! `raftmq_storage::broker::locks`): the leader stamps the time, every replica applies the
//! same, so a new leader knows every holder.

use std::time::Duration;

use raftmq_storage::Command;
use raftmq_storage::Response;
use raftmq_storage::broker::locks::LockCmd;

use super::BrokerGroup;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// How long a queue lock lasts without renewal (RocketMQ's `lockMaxLiveTime`).
pub const LOCK_TTL: Duration = Duration::from_secs(60);

impl BrokerGroup {
    /// Locks (`lock`) or unlocks `queues` (topic, queue) of consumer group `group` for `client`;
    /// returns the queues the client holds afterwards. This node must lead the group.
    pub async fn lock_queues(
        &self,
        group: &str,
        client: &str,
        queues: Vec<(String, u32)>,
        lock: bool,
    ) -> Result<Vec<(String, u32)>, BrokerError> {
        let cmd = LockCmd {
            group: group.to_string(),
            client: client.to_string(),
            now_ms: now_ms(),
            ttl_ms: if lock { LOCK_TTL.as_millis() as i64 } else { 0 },
            queues,
        };
        match self.group.write(Command::Lock(cmd)).await? {
            Response::Locked(held) => Ok(held),
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }
}
