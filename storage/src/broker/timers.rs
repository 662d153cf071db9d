//! Delayed and scheduled messages: a message whose delivery time is after its store time waits
//! in the timer table instead of its consume queue, its record still in its log entry. When
//! timers come due, the leader reads their records and proposes one `Deliver` entry carrying
//! copies of them; apply checks every timer is still pending, appends the copies to their queues
//! (so consume queues stay in log order, which retention relies on) and removes the timers. The
//! table lives in the state machine, so a new leader delivers what the old one had not, and a
//! timer is delivered exactly once. Log purge never passes the oldest pending timer.

use bytes::Bytes;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::codec::slice_of;
use crate::command::AppendBatch;
use crate::error::DecodeError;

/// Where a timer sorts: delivery time (ms), then the message's log index and position.
pub type TimerKey = (i64, u64, u32);

/// A message waiting for its delivery time (its record stays in the log entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// Record length in the entry's batch.
    pub len: u32,
    /// Message id (what a recall names).
    pub message_id: String,
}

impl Timer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.len).str(&self.message_id);
        w.into_vec()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b, "timer record");
        let t = Self { len: r.u32()?, message_id: r.str()?.to_string() };
        r.finish()?;
        Ok(t)
    }
}

/// Pending timers of a broker group, in delivery order, with an index by message id.
pub type TimerTable = super::id_table::IdTable<TimerKey, Timer>;

impl super::id_table::MessageIdOf for Timer {
    fn message_id(&self) -> &str {
        &self.message_id
    }
}

/// The key suffix of a timer: delivery time, log index, position (big-endian; delivery times
/// before 1970 do not occur, the send path refuses them).
pub(crate) fn key_suffix(k: &TimerKey) -> [u8; 20] {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&(k.0.max(0) as u64).to_be_bytes());
    b[8..16].copy_from_slice(&k.1.to_be_bytes());
    b[16..].copy_from_slice(&k.2.to_be_bytes());
    b
}

/// Parses what [`key_suffix`] wrote.
pub(crate) fn parse_key_suffix(b: &[u8]) -> Result<TimerKey, DecodeError> {
    let mut r = Reader::new(b, "timer key");
    let k = (r.u64()? as i64, r.u64()?, r.u32()?);
    r.finish()?;
    Ok(k)
}

/// Delivers due timers: their copies go to their queues, the timers go away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverCmd {
    /// The timers, each due by `append.store_ms` (the leader's clock); all must be pending or
    /// the command changes nothing.
    pub timers: Vec<TimerKey>,
    /// The messages to append, one per timer, in the same order.
    pub append: AppendBatch,
}

impl DeliverCmd {
    /// Appends the encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.timers.len() as u32);
        for k in &self.timers {
            w.i64(k.0).u64(k.1).u32(k.2);
        }
        w.i64(self.append.store_ms).str(&self.append.store_host).bytes(&self.append.batch);
    }

    /// Decodes what [`DeliverCmd::encode`] wrote; the batch shares `whole`'s memory.
    pub fn decode(r: &mut Reader<'_>, whole: &Bytes) -> Result<Self, DecodeError> {
        let n = r.u32()? as usize;
        if n.saturating_mul(20) > r.remaining() {
            return Err(DecodeError::new("deliver command", "count exceeds the entry"));
        }
        let timers =
            (0..n).map(|_| Ok((r.i64()?, r.u64()?, r.u32()?))).collect::<Result<_, DecodeError>>()?;
        let store_ms = r.i64()?;
        let store_host = r.str()?.to_string();
        let batch = slice_of(whole, r.bytes()?);
        Ok(Self { timers, append: AppendBatch { store_ms, store_host, batch } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keys_sort_by_time() {
        let t = Timer { len: 99, message_id: "m".into() };
        assert_eq!(Timer::decode(&t.encode()).unwrap(), t);
        let (early, late) = (key_suffix(&(1_000, 900, 5)), key_suffix(&(2_000, 1, 0)));
        assert!(early < late, "earlier delivery sorts first whatever the log index");
        assert_eq!(parse_key_suffix(&early).unwrap(), (1_000, 900, 5));
        assert!(Timer::decode(&[0, 0]).is_err());
    }
}

/// Cancels the pending delayed message `message_id` (RocketMQ's recall).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallCmd {
    /// The delayed message.
    pub message_id: String,
}
