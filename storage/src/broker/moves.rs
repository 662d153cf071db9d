//! Moves out of flight: a handed-out message whose delivery failed (its invisible time ran out
//! or the consumer gave it back) moves to its consumer group's retry topic (`%RETRY%<group>`),
//! and one that used up its delivery attempts to the group's dead-letter topic (`%DLQ%<group>`).
//! Each move is one Raft entry that both removes the messages from flight and appends their
//! copies, so a leader change can neither lose a message nor move it twice, and the original
//! queue's progress is not held back by a message waiting for its retry.

use bytes::Bytes;

use super::pop::AckCmd;
use super::pop::AckOp;
use super::pop::decode_ack;
use super::pop::encode_ack;
use crate::codec::Reader;
use crate::codec::Writer;
use crate::codec::slice_of;
use crate::command::AppendBatch;
use crate::error::DecodeError;

/// Moves messages in flight to the retry or dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveCmd {
    /// The messages leaving flight: every item must still be in flight under its epoch, or the
    /// whole command is rejected and changes nothing.
    pub ack: AckCmd,
    /// Their copies (original topic, id and attempt in properties).
    pub append: AppendBatch,
}

impl MoveCmd {
    /// Appends the encoding to `w`.
    pub fn encode(&self, w: &mut Writer) {
        encode_ack(w, &self.ack);
        w.i64(self.append.store_ms).str(&self.append.store_host).bytes(&self.append.batch);
    }

    /// Decodes what [`MoveCmd::encode`] wrote; the batch shares `whole`'s memory.
    pub fn decode(r: &mut Reader<'_>, whole: &Bytes) -> Result<Self, DecodeError> {
        let ack = decode_ack(r)?;
        if ack.op != AckOp::Ack {
            return Err(DecodeError::new("move command", "its items must be acks"));
        }
        let store_ms = r.i64()?;
        let store_host = r.str()?.to_string();
        let batch = slice_of(whole, r.bytes()?);
        Ok(Self { ack, append: AppendBatch { store_ms, store_host, batch } })
    }
}
