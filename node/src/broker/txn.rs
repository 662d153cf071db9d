//! Ending transactions on the leader of a broker group: commit (a copy of the half message's
//! record, as a normal message, goes to its queue), roll back, or record a check-back — each one
//! `Txn` entry (see `raftmq_storage::broker::txn`).

use raftmq_storage::Command;
use raftmq_storage::Response;
use raftmq_storage::broker::reader;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::BatchBuilder;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::broker::record::StoredType;
use raftmq_storage::broker::txn::TxnCmd;
use raftmq_storage::broker::txn::TxnOp;
use raftmq_storage::command::AppendBatch;

use super::BrokerGroup;
use crate::clock::now_ms;
use crate::error::BrokerError;

/// Where a record is: (log index, position in the entry's batch), length.
type RecordAt = ((u64, u32), u32);

/// A half message waiting for its transaction, as the check-back sees it.
#[derive(Debug, Clone)]
pub struct PendingHalf {
    /// Topic name.
    pub topic: String,
    /// The stored record.
    pub message: StoredMessage,
    /// Check-backs so far.
    pub checks: u32,
}

impl BrokerGroup {
    /// Commits (`commit`) or rolls back the half message `message_id`. False if no such half
    /// message is pending (its transaction ended already, or it never existed here). This node
    /// must lead the group.
    pub async fn end_transaction(&self, message_id: &str, commit: bool) -> Result<bool, BrokerError> {
        let op = if commit {
            let Some(m) = self.half_record(message_id).await? else { return Ok(false) };
            let view = RecordView::parse(&m.record).map_err(|e| BrokerError::Internal(e.to_string()))?;
            let mut copy = view.to_new();
            copy.message_type = StoredType::Normal;
            let mut batch = BatchBuilder::new();
            batch.push(&copy);
            TxnOp::Commit(AppendBatch {
                store_ms: now_ms(),
                store_host: self.store_host.clone(),
                batch: batch.finish(),
            })
        } else {
            TxnOp::Rollback
        };
        self.txn(message_id, op).await
    }

    /// Records a check-back of `message_id` made now. False if it is no longer pending.
    pub async fn record_check(&self, message_id: &str) -> Result<bool, BrokerError> {
        self.txn(message_id, TxnOp::Checked).await
    }

    async fn txn(&self, message_id: &str, op: TxnOp) -> Result<bool, BrokerError> {
        let cmd = TxnCmd { message_id: message_id.to_string(), now_ms: now_ms(), op };
        match self.group.write(Command::Txn(cmd)).await? {
            Response::Appended(_) => Ok(true),
            Response::Rejected(reason) => {
                tracing::debug!(group = %self.group.id(), %message_id, reason = %reason, "transaction step refused");
                Ok(false)
            }
            other => Err(BrokerError::Internal(format!("unexpected apply result {other:?}"))),
        }
    }

    /// The stored record of pending half message `message_id`.
    async fn half_record(&self, message_id: &str) -> Result<Option<StoredMessage>, BrokerError> {
        let Some(at) = self.data.read(|s| s.halves.find(message_id).map(|(k, h)| (k, h.len))) else {
            return Ok(None);
        };
        Ok(self.records(vec![at]).await?.pop().flatten())
    }

    /// The records at `(log index, position), length`, in order (`None` where the entry is gone),
    /// read in one blocking task.
    async fn records(&self, at: Vec<RecordAt>) -> Result<Vec<Option<StoredMessage>>, BrokerError> {
        let data = self.data.clone();
        self.blocking(move || {
            at.into_iter().map(|((index, pos), len)| reader::record_at(data.log(), index, pos, len)).collect()
        })
        .await
    }

    /// Half messages whose last check-back (or store) is at least `interval_ms` old, at most
    /// `max`, with their records.
    pub async fn halves_due(&self, interval_ms: i64, max: usize) -> Result<Vec<PendingHalf>, BrokerError> {
        let now = now_ms();
        let due: Vec<(String, u32, RecordAt)> = self.data.read(|s| {
            s.halves
                .pending
                .iter()
                .filter(|(_, h)| now.saturating_sub(h.last_check_ms) >= interval_ms)
                .take(max)
                .filter_map(|(k, h)| Some((s.topic_name(h.topic_id)?.to_string(), h.checks, (*k, h.len))))
                .collect()
        });
        let records = self.records(due.iter().map(|(_, _, at)| *at).collect()).await?;
        Ok(due
            .into_iter()
            .zip(records)
            .filter_map(|((topic, checks, _), m)| Some(PendingHalf { topic, message: m?, checks }))
            .collect())
    }
}
