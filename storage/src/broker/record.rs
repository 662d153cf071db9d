//! A message as stored in the CommitLog: the encoding of one record inside an append batch.
//!
//! A batch is what one Raft entry carries: `u32 count`, then `count` records, each prefixed by its
//! `u32` length. Records are parsed in place ([`RecordView`]); the body is never copied on the way
//! from the log to a consumer.

use bytes::Bytes;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::error::DecodeError;

const RECORD_V1: u8 = 1;

mod flag {
    pub(super) const TAG: u8 = 1;
    pub(super) const GROUP: u8 = 2;
    pub(super) const DELIVERY: u8 = 4;
    pub(super) const TRACE: u8 = 8;
}

/// RocketMQ message type of a stored message (numbers as in `apache.rocketmq.v2.MessageType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StoredType {
    /// Plain.
    Normal = 1,
    /// Ordered within its message group.
    Fifo = 2,
    /// Delivered at a later time.
    Delay = 3,
    /// Part of a transaction.
    Transaction = 4,
}

impl StoredType {
    fn from_u8(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            1 => Self::Normal,
            2 => Self::Fifo,
            3 => Self::Delay,
            4 => Self::Transaction,
            t => return Err(DecodeError::new("message record", format!("unknown message type {t}"))),
        })
    }
}

/// A message to store, as the broker builds it from a client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Topic name.
    pub topic: String,
    /// Queue within the topic.
    pub queue_id: u32,
    /// The client's message id, kept as-is.
    pub message_id: String,
    /// Message type.
    pub message_type: StoredType,
    /// Body encoding as the client declared it (`apache.rocketmq.v2.Encoding`).
    pub body_encoding: u8,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Keys (for query by key).
    pub keys: Vec<String>,
    /// Message group (FIFO sharding key), if any.
    pub message_group: Option<String>,
    /// When the producer created the message, ms since the epoch.
    pub born_ms: i64,
    /// The producer's host.
    pub born_host: String,
    /// When to deliver (delay messages), ms since the epoch.
    pub delivery_ms: Option<i64>,
    /// W3C trace context of the send.
    pub trace_context: Option<String>,
    /// User properties.
    pub properties: Vec<(String, String)>,
    /// MD5 of the body, computed once when the leader accepts the message (clients verify it on
    /// every delivery).
    pub body_md5: [u8; 16],
    /// Body.
    pub body: Bytes,
}

impl NewMessage {
    /// Appends this message's record to `w` (without the length prefix).
    pub fn encode(&self, w: &mut Writer) {
        let mut flags = 0u8;
        if self.tag.is_some() {
            flags |= flag::TAG;
        }
        if self.message_group.is_some() {
            flags |= flag::GROUP;
        }
        if self.delivery_ms.is_some() {
            flags |= flag::DELIVERY;
        }
        if self.trace_context.is_some() {
            flags |= flag::TRACE;
        }
        w.u8(RECORD_V1).u8(flags).u8(self.message_type as u8).u8(self.body_encoding);
        w.str(&self.topic).u32(self.queue_id).str(&self.message_id);
        if let Some(t) = &self.tag {
            w.str(t);
        }
        w.u32(self.keys.len() as u32);
        for k in &self.keys {
            w.str(k);
        }
        if let Some(g) = &self.message_group {
            w.str(g);
        }
        w.i64(self.born_ms).str(&self.born_host);
        if let Some(d) = self.delivery_ms {
            w.i64(d);
        }
        if let Some(t) = &self.trace_context {
            w.str(t);
        }
        w.u32(self.properties.len() as u32);
        for (k, v) in &self.properties {
            w.str(k).str(v);
        }
        w.raw(&self.body_md5);
        w.bytes(&self.body);
    }

    /// Encoded size, without the length prefix; used to bound batches before encoding.
    pub fn encoded_len(&self) -> usize {
        let s = |x: &str| 4 + x.len();
        4 + s(&self.topic)
            + 4
            + s(&self.message_id)
            + self.tag.as_deref().map_or(0, s)
            + 4
            + self.keys.iter().map(|k| s(k)).sum::<usize>()
            + self.message_group.as_deref().map_or(0, s)
            + 8
            + s(&self.born_host)
            + self.delivery_ms.map_or(0, |_| 8)
            + self.trace_context.as_deref().map_or(0, s)
            + 4
            + self.properties.iter().map(|(k, v)| s(k) + s(v)).sum::<usize>()
            + 16
            + 4
            + self.body.len()
    }
}

/// Builds the payload of one append entry from messages.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    w: Writer,
    count: u32,
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new() -> Self {
        let mut w = Writer::with_capacity(64 << 10);
        w.u32(0);
        Self { w, count: 0 }
    }

    /// Adds a message.
    pub fn push(&mut self, m: &NewMessage) {
        let at = self.w.len();
        self.w.u32(0);
        m.encode(&mut self.w);
        let len = (self.w.len() - at - 4) as u32;
        self.w.patch_u32(at, len);
        self.count += 1;
    }

    /// Messages added.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.w.len()
    }

    /// Whether no message was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch payload.
    pub fn finish(mut self) -> Bytes {
        self.w.patch_u32(0, self.count);
        Bytes::from(self.w.into_vec())
    }
}

/// One record located in a batch: where it starts (after its length prefix) and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPos {
    /// Byte offset of the record in the batch payload.
    pub pos: u32,
    /// Record length.
    pub len: u32,
}

/// Locates every record of a batch payload without parsing them.
pub fn record_positions(batch: &[u8]) -> Result<Vec<RecordPos>, DecodeError> {
    let mut r = Reader::new(batch, "message batch");
    let count = r.u32()?;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = r.u32()?;
        let pos = r.position() as u32;
        r.raw(len as usize)?;
        out.push(RecordPos { pos, len });
    }
    r.finish()?;
    Ok(out)
}

/// A stored message, parsed in place from its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Queue id.
    pub queue_id: u32,
    /// The client's message id.
    pub message_id: &'a str,
    /// Message type.
    pub message_type: StoredType,
    /// Body encoding byte.
    pub body_encoding: u8,
    /// Tag.
    pub tag: Option<&'a str>,
    /// Keys.
    pub keys: Vec<&'a str>,
    /// Message group.
    pub message_group: Option<&'a str>,
    /// Born time, ms.
    pub born_ms: i64,
    /// Born host.
    pub born_host: &'a str,
    /// Delivery time, ms.
    pub delivery_ms: Option<i64>,
    /// Trace context.
    pub trace_context: Option<&'a str>,
    /// User properties.
    pub properties: Vec<(&'a str, &'a str)>,
    /// MD5 of the body.
    pub body_md5: &'a [u8],
    /// Body.
    pub body: &'a [u8],
}

/// Most keys or properties a record may carry (bounded at the edge far below this).
const LIST_MAX: u32 = 1 << 16;

impl<'a> RecordView<'a> {
    /// An owned copy, to store again (a delivered delayed message, a dead letter).
    pub fn to_new(&self) -> NewMessage {
        let mut body_md5 = [0u8; 16];
        if self.body_md5.len() == 16 {
            body_md5.copy_from_slice(self.body_md5);
        }
        NewMessage {
            topic: self.topic.to_string(),
            queue_id: self.queue_id,
            message_id: self.message_id.to_string(),
            message_type: self.message_type,
            body_encoding: self.body_encoding,
            tag: self.tag.map(str::to_string),
            keys: self.keys.iter().map(|k| k.to_string()).collect(),
            message_group: self.message_group.map(str::to_string),
            born_ms: self.born_ms,
            born_host: self.born_host.to_string(),
            delivery_ms: self.delivery_ms,
            trace_context: self.trace_context.map(str::to_string),
            properties: self.properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body_md5,
            body: Bytes::copy_from_slice(self.body),
        }
    }

    /// Parses a record.
    pub fn parse(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b, "message record");
        if r.u8()? != RECORD_V1 {
            return Err(DecodeError::new("message record", "unknown record version"));
        }
        let flags = r.u8()?;
        let message_type = StoredType::from_u8(r.u8()?)?;
        let body_encoding = r.u8()?;
        let topic = r.str()?;
        let queue_id = r.u32()?;
        let message_id = r.str()?;
        let tag = if flags & flag::TAG != 0 { Some(r.str()?) } else { None };
        let n = r.u32()?;
        if n > LIST_MAX {
            return Err(DecodeError::new("message record", "too many keys"));
        }
        let mut keys = Vec::with_capacity(n as usize);
        for _ in 0..n {
            keys.push(r.str()?);
        }
        let message_group = if flags & flag::GROUP != 0 { Some(r.str()?) } else { None };
        let born_ms = r.i64()?;
        let born_host = r.str()?;
        let delivery_ms = if flags & flag::DELIVERY != 0 { Some(r.i64()?) } else { None };
        let trace_context = if flags & flag::TRACE != 0 { Some(r.str()?) } else { None };
        let n = r.u32()?;
        if n > LIST_MAX {
            return Err(DecodeError::new("message record", "too many properties"));
        }
        let mut properties = Vec::with_capacity(n as usize);
        for _ in 0..n {
            properties.push((r.str()?, r.str()?));
        }
        let body_md5 = r.raw(16)?;
        let body = r.bytes()?;
        r.finish()?;
        Ok(Self {
            topic,
            queue_id,
            message_id,
            message_type,
            body_encoding,
            tag,
            keys,
            message_group,
            born_ms,
            born_host,
            delivery_ms,
            trace_context,
            properties,
            body_md5,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u32) -> NewMessage {
        NewMessage {
            topic: "orders".into(),
            queue_id: i % 4,
            message_id: format!("01ABC{i}"),
            message_type: StoredType::Normal,
            body_encoding: 1,
            tag: i.is_multiple_of(2).then(|| "TagA".into()),
            keys: vec![format!("k{i}"), "shared".into()],
            message_group: None,
            born_ms: 1_700_000_000_000 + i as i64,
            born_host: "10.0.0.1".into(),
            delivery_ms: (i == 3).then_some(42),
            trace_context: None,
            properties: vec![("a".into(), i.to_string())],
            body_md5: [i as u8; 16],
            body: Bytes::from(vec![i as u8; 10 + i as usize]),
        }
    }

    #[test]
    fn batch_round_trip() {
        let mut b = BatchBuilder::new();
        let msgs: Vec<NewMessage> = (0..5).map(msg).collect();
        for m in &msgs {
            b.push(m);
        }
        let payload = b.finish();
        let pos = record_positions(&payload).unwrap();
        assert_eq!(pos.len(), 5);
        for (m, p) in msgs.iter().zip(&pos) {
            assert_eq!(p.len as usize, m.encoded_len());
            let v = RecordView::parse(&payload[p.pos as usize..(p.pos + p.len) as usize]).unwrap();
            assert_eq!(v.topic, m.topic);
            assert_eq!(v.queue_id, m.queue_id);
            assert_eq!(v.message_id, m.message_id);
            assert_eq!(v.tag, m.tag.as_deref());
            assert_eq!(v.keys, m.keys.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(v.delivery_ms, m.delivery_ms);
            assert_eq!(v.body, &m.body[..]);
            assert_eq!(v.body_md5, &m.body_md5[..]);
            assert_eq!(v.properties, vec![("a", m.properties[0].1.as_str())]);
        }
    }

    #[test]
    fn corrupt_batches_are_errors() {
        assert!(record_positions(&[0, 0, 0, 2, 0, 0, 0, 1, 9]).is_err());
        assert!(RecordView::parse(&[2]).is_err());
        let mut w = Writer::default();
        msg(1).encode(&mut w);
        let mut v = w.into_vec();
        v.truncate(v.len() - 3);
        assert!(RecordView::parse(&v).is_err());
    }
}
