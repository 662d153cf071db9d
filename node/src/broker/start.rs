//! Where a consumer group starts on a queue it never consumed from: one rule for every front end
//! (a receive's first `Pop`, a 4.x consumer's offset query for a new group).

use raftmq_storage::GroupId;
use raftmq_storage::StorageError;
use raftmq_storage::Store;
use raftmq_storage::broker::reader;
use raftmq_storage::log_store::LogStore;
use raftmq_storage::nameserver::ConsumeFrom;
use raftmq_storage::nameserver::ConsumerGroup;

/// A group's starting point, resolved from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest stored message.
    Min,
    /// The first message stored at or after this time, ms since the epoch.
    Time(i64),
    /// RocketMQ's rule for a new group (`PopMessageProcessor.getInitOffset`): offset 0 if the
    /// queue was never trimmed and its head is still in memory (in the log's tail cache, our page
    /// cache), else the newest message (`end - 1`), so a consumer that starts late still sees
    /// the last message sent before it.
    HotHeadOrNewest,
}

impl Start {
    /// Where `group` starts: a group created explicitly from `LAST` receives every message stored
    /// from its creation on; a group created on first use follows RocketMQ's rule.
    pub fn of(group: &ConsumerGroup) -> Start {
        match group.consume_from {
            ConsumeFrom::Last => Start::Time(group.created_at_ms),
            ConsumeFrom::First => Start::Min,
            ConsumeFrom::Timestamp(ms) => Start::Time(ms),
            ConsumeFrom::Auto => Start::HotHeadOrNewest,
        }
    }

    /// The offset this start means on a queue whose readable offsets are `min..end`. Blocking
    /// (reads RocksDB).
    #[allow(clippy::too_many_arguments)]
    pub fn resolve(
        self,
        store: &Store,
        log: &LogStore,
        group: GroupId,
        topic_id: u32,
        queue: u32,
        min: u64,
        end: u64,
    ) -> Result<u64, StorageError> {
        Ok(match self {
            Start::Min => min,
            Start::Time(ms) => reader::offset_for_time(store, group, topic_id, queue, min, end, ms)?,
            Start::HotHeadOrNewest => {
                let head_hot = min == 0
                    && end > 0
                    && reader::cq_units(store, group, topic_id, queue, 0, 1, 1)?
                        .first()
                        .is_some_and(|(_, u)| log.cached(u.log_index).is_some());
                if head_hot { 0 } else { end.saturating_sub(1).max(min) }
            }
        })
    }
}

impl super::BrokerGroup {
    /// The offset where a consumer group starting by `start` begins on a queue it never
    /// committed an offset on.
    pub async fn start_offset(
        &self,
        start: Start,
        topic: &str,
        queue: u32,
    ) -> Result<u64, crate::error::BrokerError> {
        let (min, end) = self.bounds(topic, queue);
        let Some(tid) = self.data.read(|s| s.topic_id(topic)) else { return Ok(end) };
        let data = self.data.clone();
        self.blocking(move || start.resolve(data.store(), data.log(), data.group(), tid, queue, min, end))
            .await
    }
}
