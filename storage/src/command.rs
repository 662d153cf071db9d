//! The application data of a Raft entry ([`Command`]) and what applying it returns ([`Response`]).

use std::fmt;

use bytes::Bytes;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::codec::slice_of;
use crate::error::DecodeError;
use crate::nameserver::MetaCommand;
use crate::nameserver::MetaResponse;

/// Messages to append to a broker group's CommitLog: the payload of one Raft entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendBatch {
    /// Store time, stamped by the leader when it proposed the batch (apply reads no clock).
    pub store_ms: i64,
    /// The leader's client address, reported as the store host of these messages.
    pub store_host: String,
    /// Records (see [`crate::broker::record`]); shares memory with the entry it came from.
    pub batch: Bytes,
}

/// Consumer offsets to commit in a broker group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffsets {
    /// Consumer group.
    pub group: String,
    /// `(topic, queue, next offset to consume)`.
    pub offsets: Vec<(String, u32, u64)>,
}

/// Retention of a broker group: per topic, messages stored before `cut_ms` are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retain {
    /// `(topic, cut time in ms since the epoch)`, computed by the leader from the topics'
    /// retention and its clock (apply reads no clock).
    pub cuts: Vec<(String, i64)>,
}

/// What one Raft entry asks a state machine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A change to the NameServer's metadata.
    Meta(MetaCommand),
    /// Messages for a broker group's CommitLog.
    Append(AppendBatch),
    /// Consumer offsets for a broker group.
    CommitOffsets(CommitOffsets),
    /// Remove expired messages of a broker group.
    Retain(Retain),
    /// Hand messages out to a consumer group (receive with invisible time).
    Pop(crate::broker::pop::PopCmd),
    /// Ack handed-out messages, or change their invisible time.
    Ack(crate::broker::pop::AckCmd),
    /// Move handed-out messages out of flight and append their copies: to the group's retry
    /// topic after a failed delivery, or to its dead-letter topic after the last one.
    Move(crate::broker::moves::MoveCmd),
    /// Deliver delayed messages whose time came.
    Deliver(crate::broker::timers::DeliverCmd),
    /// Commit, roll back or record a check-back of a half message.
    Txn(crate::broker::txn::TxnCmd),
    /// Cancel a pending delayed message.
    Recall(crate::broker::timers::RecallCmd),
    /// Lock or unlock queues for an orderly consumer.
    Lock(crate::broker::locks::LockCmd),
}

/// Tags of [`Command`] variants in the entry encoding. Never reuse a retired tag.
mod tag {
    pub(super) const META: u8 = 1;
    pub(super) const APPEND: u8 = 2;
    pub(super) const COMMIT_OFFSETS: u8 = 3;
    pub(super) const RETAIN: u8 = 4;
    pub(super) const POP: u8 = 5;
    pub(super) const ACK: u8 = 6;
    pub(super) const MOVE: u8 = 7;
    pub(super) const DELIVER: u8 = 8;
    pub(super) const TXN: u8 = 9;
    pub(super) const RECALL: u8 = 10;
    pub(super) const LOCK: u8 = 11;
}

impl Command {
    /// Appends the command's encoding to `w`.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Command::Meta(m) => {
                // Serializing a plain enum of strings and numbers into a Vec cannot fail.
                let json = serde_json::to_vec(m).unwrap_or_default();
                w.u8(tag::META).bytes(&json);
            }
            Command::Append(a) => {
                w.u8(tag::APPEND).i64(a.store_ms).str(&a.store_host).bytes(&a.batch);
            }
            Command::CommitOffsets(c) => {
                w.u8(tag::COMMIT_OFFSETS).str(&c.group).u32(c.offsets.len() as u32);
                for (topic, queue, offset) in &c.offsets {
                    w.str(topic).u32(*queue).u64(*offset);
                }
            }
            Command::Retain(r) => {
                w.u8(tag::RETAIN).u32(r.cuts.len() as u32);
                for (topic, cut) in &r.cuts {
                    w.str(topic).i64(*cut);
                }
            }
            Command::Pop(p) => {
                w.u8(tag::POP);
                crate::broker::pop::encode_pop(w, p);
            }
            Command::Ack(a) => {
                w.u8(tag::ACK);
                crate::broker::pop::encode_ack(w, a);
            }
            Command::Move(d) => {
                w.u8(tag::MOVE);
                d.encode(w);
            }
            Command::Deliver(d) => {
                w.u8(tag::DELIVER);
                d.encode(w);
            }
            Command::Txn(t) => {
                w.u8(tag::TXN);
                t.encode(w);
            }
            Command::Recall(r) => {
                w.u8(tag::RECALL).str(&r.message_id);
            }
            Command::Lock(l) => {
                w.u8(tag::LOCK);
                l.encode(w);
            }
        }
    }

    /// Decodes a command written by [`Command::encode`]; `whole` is the buffer `r` reads, so
    /// large payloads are sliced out of it instead of copied.
    pub fn decode(r: &mut Reader<'_>, whole: &Bytes) -> Result<Command, DecodeError> {
        match r.u8()? {
            tag::META => {
                let json = r.bytes()?;
                let m = serde_json::from_slice(json)
                    .map_err(|e| DecodeError::new("meta command", e.to_string()))?;
                Ok(Command::Meta(m))
            }
            tag::APPEND => {
                let store_ms = r.i64()?;
                let store_host = r.str()?.to_string();
                let batch = slice_of(whole, r.bytes()?);
                Ok(Command::Append(AppendBatch { store_ms, store_host, batch }))
            }
            tag::COMMIT_OFFSETS => {
                let group = r.str()?.to_string();
                let n = r.u32()?;
                if n as usize > r.remaining() {
                    return Err(DecodeError::new("commit offsets", "count exceeds the entry"));
                }
                let mut offsets = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    offsets.push((r.str()?.to_string(), r.u32()?, r.u64()?));
                }
                Ok(Command::CommitOffsets(CommitOffsets { group, offsets }))
            }
            tag::RETAIN => {
                let n = r.u32()?;
                if n as usize > r.remaining() {
                    return Err(DecodeError::new("retain", "count exceeds the entry"));
                }
                let mut cuts = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    cuts.push((r.str()?.to_string(), r.i64()?));
                }
                Ok(Command::Retain(Retain { cuts }))
            }
            tag::POP => Ok(Command::Pop(crate::broker::pop::decode_pop(r)?)),
            tag::ACK => Ok(Command::Ack(crate::broker::pop::decode_ack(r)?)),
            tag::DELIVER => Ok(Command::Deliver(crate::broker::timers::DeliverCmd::decode(r, whole)?)),
            tag::TXN => Ok(Command::Txn(crate::broker::txn::TxnCmd::decode(r, whole)?)),
            tag::RECALL => {
                Ok(Command::Recall(crate::broker::timers::RecallCmd { message_id: r.str()?.to_string() }))
            }
            tag::MOVE => Ok(Command::Move(crate::broker::moves::MoveCmd::decode(r, whole)?)),
            tag::LOCK => Ok(Command::Lock(crate::broker::locks::LockCmd::decode(r)?)),
            t => Err(DecodeError::new("command", format!("unknown command tag {t}"))),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Meta(m) => write!(f, "meta:{m:?}"),
            Command::Append(a) => write!(f, "append:{} bytes", a.batch.len()),
            Command::CommitOffsets(c) => write!(f, "commit:{}:{} queues", c.group, c.offsets.len()),
            Command::Retain(r) => write!(f, "retain:{} topics", r.cuts.len()),
            Command::Pop(p) => write!(f, "pop:{}:{}:{} queues", p.group, p.topic, p.queues.len()),
            Command::Ack(a) => write!(f, "ack:{}:{}:{} items", a.group, a.topic, a.items.len()),
            Command::Move(d) => {
                write!(f, "move:{}:{}:{} items", d.ack.group, d.ack.topic, d.ack.items.len())
            }
            Command::Deliver(d) => write!(f, "deliver:{} timers", d.timers.len()),
            Command::Txn(t) => write!(f, "txn:{}", t.message_id),
            Command::Recall(r) => write!(f, "recall:{}", r.message_id),
            Command::Lock(l) => write!(f, "lock:{}:{}:{} queues", l.group, l.client, l.queues.len()),
        }
    }
}

/// The result of applying one entry, handed back to whoever proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Nothing to report (blank and membership entries).
    Empty,
    /// Outcome of a NameServer change.
    Meta(MetaResponse),
    /// Queue offsets of appended messages, in batch order.
    Appended(Vec<u64>),
    /// A broker command was applied.
    Done,
    /// A broker command could not be applied (it changed nothing).
    Rejected(String),
    /// Messages a receive handed out.
    Popped(Vec<crate::broker::pop::Popped>),
    /// Outcome of each item of an ack (or change of invisible time).
    Acked(Vec<crate::broker::pop::AckResult>),
    /// The queues a lock command's client holds after it: (topic, queue).
    Locked(Vec<(String, u32)>),
}
