//! Delivery of delayed and scheduled messages on the leader of each broker group: every tick,
//! a group whose oldest timer is due reads the due records from the log and proposes one
//! `Deliver` entry with their copies (see `raftmq_storage::broker::timers`). A new leader picks
//! up where the old one stopped, because the timers are state-machine state.

use std::time::Duration;

use raftmq_storage::Command;
use raftmq_storage::Response;
use raftmq_storage::broker::reader;
use raftmq_storage::broker::record::BatchBuilder;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::broker::timers::DeliverCmd;
use raftmq_storage::broker::timers::RecallCmd;
use raftmq_storage::command::AppendBatch;
use tokio::sync::watch;

use super::BrokerGroup;
use super::Brokers;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// How often leaders look for due timers: a delayed message is at most this late (plus the
/// commit), well inside RocketMQ's one-second precision.
const TICK: Duration = Duration::from_millis(100);
/// Most timers delivered by one entry.
const DELIVER_MAX: usize = 1024;

/// Runs deliveries until shutdown.
pub async fn run(brokers: Brokers, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
        for b in brokers.all() {
            if !b.group.is_leader() {
                continue;
            }
            // Deliver in rounds while a backlog of due timers remains.
            loop {
                match b.deliver_due().await {
                    Ok(n) if n >= DELIVER_MAX => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(group = %b.group.id(), error = %e, "delivering delayed messages failed; retrying");
                        break;
                    }
                }
            }
        }
    }
}

impl BrokerGroup {
    /// Cancels pending delayed message `message_id`; false if it is not pending (delivered or
    /// recalled already). This node must lead.
    pub async fn recall(&self, message_id: &str) -> Result<bool, BrokerError> {
        let cmd = RecallCmd { message_id: message_id.to_string() };
        match self.group.write(Command::Recall(cmd)).await? {
            Response::Done => Ok(true),
            Response::Rejected(reason) => {
                tracing::debug!(group = %self.group.id(), %message_id, reason = %reason, "recall refused");
                Ok(false)
            }
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }

    /// Delivers the timers due now (up to [`DELIVER_MAX`]); how many. This node must lead.
    pub async fn deliver_due(&self) -> Result<usize, BrokerError> {
        let now = now_ms();
        let due: Vec<_> = self.data.read(|s| {
            s.timers
                .pending
                .range(..=(now, u64::MAX, u32::MAX))
                .take(DELIVER_MAX)
                .map(|(k, t)| (*k, t.len))
                .collect()
        });
        if due.is_empty() {
            return Ok(0);
        }
        let data = self.data.clone();
        let (timers, batch) = self.blocking(move || {
            let (log, group) = (data.log(), data.group());
            let mut batch = BatchBuilder::new();
            let mut timers = Vec::with_capacity(due.len());
            for (k, len) in due {
                let Some(m) = reader::record_at(log, k.1, k.2, len)? else {
                    tracing::error!(%group, log_index = k.1, "a delayed message's entry is gone; it cannot be delivered");
                    continue;
                };
                batch.push(&RecordView::parse(&m.record)?.to_new());
                timers.push(k);
            }
            Ok((timers, batch.finish()))
        })
        .await?;
        if timers.is_empty() {
            return Ok(0);
        }
        let n = timers.len();
        let cmd = DeliverCmd {
            timers,
            append: AppendBatch { store_ms: now, store_host: self.store_host.clone(), batch },
        };
        match self.group.write(Command::Deliver(cmd)).await? {
            Response::Appended(_) => Ok(n),
            Response::Rejected(reason) => {
                tracing::debug!(group = %self.group.id(), reason = %reason, "delivery was stale; next tick");
                Ok(0)
            }
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }
}
