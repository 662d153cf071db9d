//! Messages as the 4.x clients write and read them: the properties string, the batch body of
//! SEND_BATCH_MESSAGE, the stored-message layout of pull bodies and check-backs, and the
//! offset message id (`offsetMsgId`).

use std::net::Ipv4Addr;
use std::net::SocketAddrV4;

use bytes::Buf;
use bytes::BufMut;
use bytes::Bytes;
use bytes::BytesMut;

/// Magic code of a stored message (RocketMQ's `MESSAGE_MAGIC_CODE`, V1: one-byte topic length).
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// `sysFlag` bit: the body is compressed (zlib unless bits 8-10 name another codec).
pub const SYSFLAG_COMPRESSED: i32 = 0x1;
/// `sysFlag` bits of a transaction's half message.
pub const SYSFLAG_PREPARED: i32 = 0x4;
/// `sysFlag` mask of the transaction type.
pub const SYSFLAG_TRANSACTION_MASK: i32 = 0xC;
/// `sysFlag` mask of the compression codec.
pub const SYSFLAG_COMPRESSION_MASK: i32 = 0x700;
/// `sysFlag` value of zlib compression (with [`SYSFLAG_COMPRESSED`]).
pub const SYSFLAG_ZLIB: i32 = 0x300;
/// Longest properties string (it travels with an i16 length).
pub const PROPERTIES_MAX: usize = i16::MAX as usize;

const NAME_SEP: char = '\u{1}';
const PROP_SEP: char = '\u{2}';

/// Parses a properties string (`name\u0001value\u0002...`); entries with an empty name or value
/// are skipped, as RocketMQ's own parser does.
pub fn parse_properties(s: &str) -> Vec<(String, String)> {
    s.split(PROP_SEP)
        .filter_map(|kv| {
            let (k, v) = kv.split_once(NAME_SEP)?;
            (!k.is_empty() && !v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Writes a properties string.
pub fn write_properties<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (k, v) in props {
        if !out.is_empty() {
            out.push(PROP_SEP);
        }
        out.push_str(k);
        out.push(NAME_SEP);
        out.push_str(v);
    }
    out
}

/// One message of a SEND_BATCH_MESSAGE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The user's flag.
    pub flag: i32,
    /// Body.
    pub body: Bytes,
    /// Properties string.
    pub properties: String,
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

fn short(what: &str) -> BodyError {
    BodyError(format!("batch body ends inside {what}"))
}

/// Splits a SEND_BATCH_MESSAGE body: per message `i32 total, i32 magic, i32 crc, i32 flag,
/// i32 body length, body, i16 properties length, properties`.
pub fn decode_batch(mut b: Bytes) -> Result<Vec<BatchItem>, BodyError> {
    let mut out = Vec::new();
    while b.has_remaining() {
        if b.remaining() < 20 {
            return Err(short("a message header"));
        }
        let total = b.get_i32();
        let _magic = b.get_i32();
        let _crc = b.get_i32();
        let flag = b.get_i32();
        let body_len = usize::try_from(b.get_i32()).map_err(|_| BodyError("negative body length".into()))?;
        if b.remaining() < body_len {
            return Err(short("a body"));
        }
        let body = b.split_to(body_len);
        if b.remaining() < 2 {
            return Err(short("a properties length"));
        }
        let props_len =
            usize::try_from(b.get_i16()).map_err(|_| BodyError("negative properties length".into()))?;
        if b.remaining() < props_len {
            return Err(short("properties"));
        }
        let properties = String::from_utf8(b.split_to(props_len).to_vec())
            .map_err(|_| BodyError("properties are not UTF-8".into()))?;
        if usize::try_from(total).ok() != Some(22 + body_len + props_len) {
            return Err(BodyError(format!("message size {total} does not match its parts")));
        }
        out.push(BatchItem { flag, body, properties });
    }
    Ok(out)
}

/// Encodes a batch body (what the 4.x producer sends; for tests and tools).
pub fn encode_batch(items: &[BatchItem]) -> Bytes {
    let mut b = BytesMut::new();
    for m in items {
        b.put_i32((22 + m.body.len() + m.properties.len()) as i32);
        b.put_i32(0);
        b.put_i32(0);
        b.put_i32(m.flag);
        b.put_i32(m.body.len() as i32);
        b.put_slice(&m.body);
        b.put_i16(m.properties.len() as i16);
        b.put_slice(m.properties.as_bytes());
    }
    b.freeze()
}

/// A message in the stored-message layout (`MessageDecoder`), as pull bodies, query answers and
/// check-backs carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    /// Queue id (the broker's own numbering).
    pub queue_id: i32,
    /// The user's flag.
    pub flag: i32,
    /// Queue offset.
    pub queue_offset: i64,
    /// Physical offset: what the offset message id and codes 33, 36 and 37 carry.
    pub physical_offset: i64,
    /// System flag.
    pub sys_flag: i32,
    /// When the producer made it, ms.
    pub born_ms: i64,
    /// The producer's address.
    pub born_host: SocketAddrV4,
    /// When it was stored, ms.
    pub store_ms: i64,
    /// The broker's address.
    pub store_host: SocketAddrV4,
    /// Deliveries it had before (retries).
    pub reconsume_times: i32,
    /// Body, as stored.
    pub body: &'a [u8],
    /// Topic (at most 127 bytes).
    pub topic: &'a str,
    /// Properties string (at most 32767 bytes).
    pub properties: &'a str,
}

impl Stored<'_> {
    /// Appends this message to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let topic = &self.topic.as_bytes()[..self.topic.len().min(i8::MAX as usize)];
        let props = &self.properties.as_bytes()[..self.properties.len().min(PROPERTIES_MAX)];
        let total = 4
            + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + 8
            + 8
            + 8
            + 4
            + 8
            + 4
            + self.body.len()
            + 1
            + topic.len()
            + 2
            + props.len();
        out.reserve(total);
        out.put_i32(total as i32);
        out.put_i32(MAGIC_V1);
        out.put_i32((crc32fast::hash(self.body) & 0x7fff_ffff) as i32);
        out.put_i32(self.queue_id);
        out.put_i32(self.flag);
        out.put_i64(self.queue_offset);
        out.put_i64(self.physical_offset);
        out.put_i32(self.sys_flag);
        out.put_i64(self.born_ms);
        out.put_slice(&self.born_host.ip().octets());
        out.put_i32(i32::from(self.born_host.port()));
        out.put_i64(self.store_ms);
        out.put_slice(&self.store_host.ip().octets());
        out.put_i32(i32::from(self.store_host.port()));
        out.put_i32(self.reconsume_times);
        out.put_i64(0);
        out.put_i32(self.body.len() as i32);
        out.put_slice(self.body);
        out.put_i8(topic.len() as i8);
        out.put_slice(topic);
        out.put_i16(props.len() as i16);
        out.put_slice(props);
    }
}

/// The offset message id of a message stored at `physical_offset` by the broker at `host`:
/// upper-case hex of the IPv4 address, the port (i32) and the offset (i64).
pub fn offset_msg_id(host: SocketAddrV4, physical_offset: i64) -> String {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&host.ip().octets());
    b.extend_from_slice(&i32::from(host.port()).to_be_bytes());
    b.extend_from_slice(&physical_offset.to_be_bytes());
    hex::encode_upper(b)
}

/// Reads an offset message id back: the broker's address and the physical offset.
pub fn parse_offset_msg_id(id: &str) -> Option<(SocketAddrV4, i64)> {
    if id.len() != 32 || !id.is_ascii() {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, out) in b.iter_mut().enumerate() {
        *out = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).ok()?;
    }
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let port = u16::try_from(i32::from_be_bytes([b[4], b[5], b[6], b[7]])).ok()?;
    let offset = i64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    Some((SocketAddrV4::new(ip, port), offset))
}

/// `host:port` (or a bare host) as an IPv4 socket address; unknown parts are zero (the
/// stored-message layout has room for IPv4 only here).
pub fn socket_v4(addr: &str) -> SocketAddrV4 {
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(0)),
        None => (addr, 0),
    };
    SocketAddrV4::new(host.parse().unwrap_or(Ipv4Addr::UNSPECIFIED), port)
}

#[cfg(test)]
mod tests;
