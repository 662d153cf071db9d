//! The Remoting frame and its codec: `i32 total` (header and body, not itself), `i32` whose top
//! byte is the header's serialize type (0 JSON, 1 ROCKETMQ binary) and whose low 24 bits are the
//! header length, the header, the body. Big-endian.
//!
//! Decoding is lenient where clients differ (`extFields` values that arrive as JSON numbers or
//! booleans; a language given by name or number) and strict where a wrong guess would corrupt
//! (lengths): a frame that cannot be delimited or whose header does not parse is an error, and
//! the connection closes, as RocketMQ's own decoder does. Nothing here panics on input.

use std::collections::BTreeMap;

use bytes::Buf;
use bytes::BufMut;
use bytes::Bytes;
use bytes::BytesMut;
use serde::Deserialize;
use tokio_util::codec::Decoder;
use tokio_util::codec::Encoder;

/// Largest frame accepted or sent (RocketMQ's `frameMaxLength`).
pub const FRAME_MAX: usize = 16 << 20;
/// The version this server answers with: RocketMQ 4.9.8's (`MQVersion.Version.V4_9_8` ordinal).
/// The Java client reads the broker version from the heartbeat reply and refuses SQL92 filters
/// below 232.
pub const VERSION: i32 = 409;
/// Flag bit of a response.
const FLAG_RESPONSE: i32 = 1;
/// Flag bit of a request that expects no response.
const FLAG_ONEWAY: i32 = 2;
/// Fixed part of a binary header.
const BINARY_FIXED: usize = 21;

/// How a header is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerializeType {
    /// JSON (every client's default).
    Json,
    /// RocketMQ's binary header.
    RocketMq,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The frame is malformed; the connection closes.
    #[error("bad frame: {0}")]
    Frame(String),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn bad(what: impl Into<String>) -> CodecError {
    CodecError::Frame(what.into())
}

/// One request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Request code, or response code.
    pub code: i32,
    /// The sender's language (`JAVA`, `GO`, `RUST`, ...).
    pub language: String,
    /// The sender's version (an enum ordinal of RocketMQ's versions).
    pub version: i32,
    /// Matches a response to its request.
    pub opaque: i32,
    /// Bit 0: response; bit 1: oneway.
    pub flag: i32,
    /// Error text of a response.
    pub remark: Option<String>,
    /// The custom header's fields, as strings.
    pub ext: BTreeMap<String, String>,
    /// How the header was (or is to be) written.
    pub serialize: SerializeType,
    /// The body.
    pub body: Bytes,
}

impl Command {
    /// A request with `code`, written as JSON.
    pub fn request(code: i32, opaque: i32) -> Command {
        Command {
            code,
            language: "JAVA".into(),
            version: VERSION,
            opaque,
            flag: 0,
            remark: None,
            ext: BTreeMap::new(),
            serialize: SerializeType::Json,
            body: Bytes::new(),
        }
    }

    /// The response to this request: `code`, its opaque, its serialize type.
    pub fn response(&self, code: i32, remark: Option<String>) -> Command {
        Command {
            code,
            language: "JAVA".into(),
            version: VERSION,
            opaque: self.opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext: BTreeMap::new(),
            serialize: self.serialize,
            body: Bytes::new(),
        }
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether the sender expects no response.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks a request oneway.
    pub fn oneway(mut self) -> Command {
        self.flag |= FLAG_ONEWAY;
        self
    }

    /// Sets a header field.
    pub fn with(mut self, key: &str, value: impl ToString) -> Command {
        self.ext.insert(key.to_string(), value.to_string());
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Command {
        self.body = body.into();
        self
    }
}

/// RocketMQ's `LanguageCode` names by number.
const LANGUAGES: [&str; 13] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS",
    "RUST",
];

fn language_name(code: u8) -> String {
    LANGUAGES.get(usize::from(code)).map_or_else(|| format!("LANGUAGE_{code}"), |s| s.to_string())
}

fn language_code(name: &str) -> u8 {
    LANGUAGES.iter().position(|l| *l == name).map_or(7, |p| p as u8)
}

/// A JSON scalar that some clients send where others send a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null(()),
}

impl Scalar {
    fn into_string(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s),
            Scalar::Int(n) => Some(n.to_string()),
            Scalar::Float(f) => Some(f.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Null(()) => None,
        }
    }

    fn into_i32(self, field: &str) -> Result<i32, CodecError> {
        match self {
            Scalar::Int(n) => i32::try_from(n).map_err(|_| bad(format!("header field {field} out of range"))),
            Scalar::Str(s) => {
                s.trim().parse().map_err(|_| bad(format!("header field {field} is not a number")))
            }
            Scalar::Null(()) => Ok(0),
            _ => Err(bad(format!("header field {field} is not a number"))),
        }
    }
}

#[derive(Deserialize)]
struct JsonHeader {
    code: Option<Scalar>,
    language: Option<Scalar>,
    version: Option<Scalar>,
    opaque: Option<Scalar>,
    flag: Option<Scalar>,
    remark: Option<Scalar>,
    #[serde(rename = "extFields")]
    ext_fields: Option<BTreeMap<String, Scalar>>,
}

fn decode_json(header: &[u8], body: Bytes) -> Result<Command, CodecError> {
    let h: JsonHeader =
        serde_json::from_slice(header).map_err(|e| bad(format!("header is not RocketMQ's JSON: {e}")))?;
    let int = |v: Option<Scalar>, field: &str| v.map_or(Ok(0), |s| s.into_i32(field));
    let language = match h.language {
        Some(Scalar::Int(n)) => u8::try_from(n).map(language_name).unwrap_or_else(|_| "OTHER".into()),
        Some(s) => s.into_string().unwrap_or_else(|| "JAVA".into()),
        None => "JAVA".into(),
    };
    Ok(Command {
        code: int(h.code, "code")?,
        language,
        version: int(h.version, "version")?,
        opaque: int(h.opaque, "opaque")?,
        flag: int(h.flag, "flag")?,
        remark: h.remark.and_then(Scalar::into_string),
        ext: h
            .ext_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.into_string().map(|v| (k, v)))
            .collect(),
        serialize: SerializeType::Json,
        body,
    })
}

fn decode_binary(mut h: &[u8], body: Bytes) -> Result<Command, CodecError> {
    if h.len() < BINARY_FIXED {
        return Err(bad(format!("binary header of {} bytes", h.len())));
    }
    let code = i32::from(h.get_i16());
    let language = language_name(h.get_u8());
    let version = i32::from(h.get_i16());
    let opaque = h.get_i32();
    let flag = h.get_i32();
    let text = |h: &mut &[u8], len: usize, what: &str| -> Result<String, CodecError> {
        if h.len() < len {
            return Err(bad(format!("binary header: {what} runs past the header")));
        }
        let s = String::from_utf8(h[..len].to_vec())
            .map_err(|_| bad(format!("binary header: {what} is not UTF-8")))?;
        h.advance(len);
        Ok(s)
    };
    let remark_len =
        usize::try_from(h.get_i32()).map_err(|_| bad("binary header: negative remark length"))?;
    let remark = text(&mut h, remark_len, "remark")?;
    if h.len() < 4 {
        return Err(bad("binary header: no extension length"));
    }
    let ext_len =
        usize::try_from(h.get_i32()).map_err(|_| bad("binary header: negative extension length"))?;
    if ext_len != h.len() {
        return Err(bad("binary header: extension length does not match the header"));
    }
    let mut ext = BTreeMap::new();
    while h.has_remaining() {
        if h.len() < 2 {
            return Err(bad("binary header: truncated field"));
        }
        let klen = usize::from(h.get_u16());
        let key = text(&mut h, klen, "field name")?;
        if h.len() < 4 {
            return Err(bad("binary header: truncated field"));
        }
        let vlen = usize::try_from(h.get_i32()).map_err(|_| bad("binary header: negative value length"))?;
        let value = text(&mut h, vlen, "field value")?;
        ext.insert(key, value);
    }
    Ok(Command {
        code,
        language,
        version,
        opaque,
        flag,
        remark: (!remark.is_empty()).then_some(remark),
        ext,
        serialize: SerializeType::RocketMq,
        body,
    })
}

/// Writes a JSON header with the fields in the order RocketMQ (fastjson) writes them.
fn encode_json(c: &Command, out: &mut Vec<u8>) {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        code: i32,
        #[serde(rename = "extFields")]
        ext_fields: &'a BTreeMap<String, String>,
        flag: i32,
        language: &'a str,
        opaque: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        remark: Option<&'a str>,
        #[serde(rename = "serializeTypeCurrentRPC")]
        serialize_type: &'static str,
        version: i32,
    }
    let header = Out {
        code: c.code,
        ext_fields: &c.ext,
        flag: c.flag,
        language: &c.language,
        opaque: c.opaque,
        remark: c.remark.as_deref(),
        serialize_type: "JSON",
        version: c.version,
    };
    // Serializing a struct of strings and integers into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &header);
}

fn encode_binary(c: &Command, out: &mut Vec<u8>) {
    out.put_i16(c.code as i16);
    out.put_u8(language_code(&c.language));
    out.put_i16(c.version as i16);
    out.put_i32(c.opaque);
    out.put_i32(c.flag);
    let remark = c.remark.as_deref().unwrap_or_default();
    out.put_i32(remark.len() as i32);
    out.put_slice(remark.as_bytes());
    let mut ext = Vec::new();
    for (k, v) in &c.ext {
        ext.put_u16(k.len() as u16);
        ext.put_slice(k.as_bytes());
        ext.put_i32(v.len() as i32);
        ext.put_slice(v.as_bytes());
    }
    out.put_i32(ext.len() as i32);
    out.put_slice(&ext);
}

/// The Remoting codec for `tokio_util`'s `Framed`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RemotingCodec;

impl Decoder for RemotingCodec {
    type Item = Command;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Command>, CodecError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let total = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let total = usize::try_from(total).map_err(|_| bad(format!("negative frame length {total}")))?;
        if total > FRAME_MAX {
            return Err(bad(format!("frame of {total} bytes; the limit is {FRAME_MAX}")));
        }
        if total < 4 {
            return Err(bad(format!("frame of {total} bytes has no header length")));
        }
        if src.len() < 4 + total {
            src.reserve(4 + total - src.len());
            return Ok(None);
        }
        src.advance(4);
        let mut frame = src.split_to(total).freeze();
        let mark = frame.get_u32();
        let kind = (mark >> 24) as u8;
        let header_len = (mark & 0x00ff_ffff) as usize;
        if header_len > frame.len() {
            return Err(bad(format!("header of {header_len} bytes in a frame of {total}")));
        }
        let header = frame.split_to(header_len);
        match kind {
            0 => decode_json(&header, frame).map(Some),
            1 => decode_binary(&header, frame).map(Some),
            t => Err(bad(format!("unknown serialize type {t}"))),
        }
    }
}

impl Encoder<Command> for RemotingCodec {
    type Error = CodecError;

    fn encode(&mut self, c: Command, dst: &mut BytesMut) -> Result<(), CodecError> {
        let mut header = Vec::with_capacity(256);
        let kind: u32 = match c.serialize {
            SerializeType::Json => {
                encode_json(&c, &mut header);
                0
            }
            SerializeType::RocketMq => {
                encode_binary(&c, &mut header);
                1
            }
        };
        let total = 4 + header.len() + c.body.len();
        if total > FRAME_MAX || header.len() > 0x00ff_ffff {
            return Err(bad(format!("frame of {total} bytes is over the limit")));
        }
        dst.reserve(4 + total);
        dst.put_u32(total as u32);
        dst.put_u32((kind << 24) | header.len() as u32);
        dst.put_slice(&header);
        dst.put_slice(&c.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
