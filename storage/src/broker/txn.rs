//! Transactional messages. A half message (type TRANSACTION) is stored in its log entry but gets
//! no queue offset: it waits in the half table until the producer ends the transaction. A
//! commit is one `Txn` entry carrying a copy of the record (as a normal message) that apply
//! appends to its queue, removing the half; a rollback removes it; a check-back records that the
//! broker asked a producer, so the count of checks survives a leader change. Log purge never
//! passes a pending half message.

use bytes::Bytes;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::codec::slice_of;
use crate::command::AppendBatch;
use crate::error::DecodeError;

/// Where a half message's record lives: log index and position in the entry's batch.
pub type HalfKey = (u64, u32);

/// A pending half message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Half {
    /// Topic id.
    pub topic_id: u32,
    /// Record length.
    pub len: u32,
    /// Message id (what `EndTransaction` names).
    pub message_id: String,
    /// Check-backs made so far.
    pub checks: u32,
    /// When the last check-back was made (the store time before the first), ms.
    pub last_check_ms: i64,
}

impl Half {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.topic_id).u32(self.len).str(&self.message_id);
        w.u32(self.checks).i64(self.last_check_ms);
        w.into_vec()
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b, "half message record");
        let h = Self {
            topic_id: r.u32()?,
            len: r.u32()?,
            message_id: r.str()?.to_string(),
            checks: r.u32()?,
            last_check_ms: r.i64()?,
        };
        r.finish()?;
        Ok(h)
    }
}

/// Pending half messages of a broker group, with an index by message id.
pub type HalfTable = super::id_table::IdTable<HalfKey, Half>;

impl super::id_table::MessageIdOf for Half {
    fn message_id(&self) -> &str {
        &self.message_id
    }
}

/// The key suffix of a half message.
pub(crate) fn key_suffix(k: &HalfKey) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&k.0.to_be_bytes());
    b[8..].copy_from_slice(&k.1.to_be_bytes());
    b
}

/// Parses what [`key_suffix`] wrote.
pub(crate) fn parse_key_suffix(b: &[u8]) -> Result<HalfKey, DecodeError> {
    let mut r = Reader::new(b, "half message key");
    let k = (r.u64()?, r.u32()?);
    r.finish()?;
    Ok(k)
}

/// How a transaction step changes a half message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Commit: append this copy (one normal message) and remove the half.
    Commit(AppendBatch),
    /// Roll back: remove the half.
    Rollback,
    /// A check-back was sent to a producer at the command's time.
    Checked,
}

/// One transaction step for one half message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCmd {
    /// The half message's id.
    pub message_id: String,
    /// Leader time, ms.
    pub now_ms: i64,
    /// What to do.
    pub op: TxnOp,
}

impl TxnCmd {
    /// Appends the encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.str(&self.message_id).i64(self.now_ms);
        match &self.op {
            TxnOp::Commit(a) => w.u8(1).i64(a.store_ms).str(&a.store_host).bytes(&a.batch),
            TxnOp::Rollback => w.u8(2),
            TxnOp::Checked => w.u8(3),
        };
    }

    /// Decodes what [`TxnCmd::encode`] wrote; a commit's batch shares `whole`'s memory.
    pub fn decode(r: &mut Reader<'_>, whole: &Bytes) -> Result<Self, DecodeError> {
        let message_id = r.str()?.to_string();
        let now_ms = r.i64()?;
        let op = match r.u8()? {
            1 => {
                let store_ms = r.i64()?;
                let store_host = r.str()?.to_string();
                let batch = slice_of(whole, r.bytes()?);
                TxnOp::Commit(AppendBatch { store_ms, store_host, batch })
            }
            2 => TxnOp::Rollback,
            3 => TxnOp::Checked,
            t => return Err(DecodeError::new("transaction command", format!("unknown operation {t}"))),
        };
        Ok(Self { message_id, now_ms, op })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_commands_round_trip() {
        let h = Half { topic_id: 1, len: 3, message_id: "m".into(), checks: 5, last_check_ms: 6 };
        assert_eq!(Half::decode(&h.encode()).unwrap(), h);
        assert_eq!(parse_key_suffix(&key_suffix(&(9, 8))).unwrap(), (9, 8));
        for op in [TxnOp::Rollback, TxnOp::Checked] {
            let c = TxnCmd { message_id: "m".into(), now_ms: 7, op };
            let mut w = Writer::default();
            c.encode(&mut w);
            let v = Bytes::from(w.into_vec());
            assert_eq!(TxnCmd::decode(&mut Reader::new(&v, "t"), &v).unwrap(), c);
        }
    }
}
