//! Messages between the 4.x wire and the broker core: a sent message (properties string, body,
//! flag, sysFlag) into a [`Draft`], a stored one into the 4.x stored-message layout.

use std::io::Read;
use std::net::SocketAddrV4;

use bytes::Bytes;
use bytes::BytesMut;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::RecordView;

use super::message::SYSFLAG_COMPRESSED;
use super::message::Stored;
use super::message::parse_properties;
use super::message::socket_v4;
use super::message::write_properties;
use crate::broker::moves::RECONSUME_TIMES;
use crate::broker::props;
use crate::broker::send::Draft;
use crate::broker::send::encoding;
use crate::error::BrokerError;

/// RocketMQ's delay levels 1-18 (`messageDelayLevel`), in ms.
pub const DELAY_LEVELS_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000,
    540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// The delay of level `level` (levels above 18 mean 18, as in RocketMQ); `None` for 0 or less.
pub fn delay_ms(level: i64) -> Option<i64> {
    (level > 0).then(|| DELAY_LEVELS_MS[(level.min(18) - 1) as usize])
}

/// A message as a 4.x producer sent it.
#[derive(Debug, Clone)]
pub struct Sent<'a> {
    /// Properties, `k\u0001v\u0002...`.
    pub properties: &'a str,
    /// Body, as sent (zlib-compressed if `sys_flag` says so).
    pub body: Bytes,
    /// The user's integer flag.
    pub flag: i32,
    /// System flags (compression, transaction).
    pub sys_flag: i32,
    /// When the producer made it.
    pub born_ms: Option<i64>,
    /// The producer's address.
    pub born_host: String,
    /// Times consumed already (a retry the client sends itself).
    pub reconsume_times: Option<i64>,
}

/// What a 4.x send asks of the core: the draft, and the delay level (0: none), which the front
/// end turns into a delivery time.
pub fn draft(m: Sent<'_>, new_id: impl FnOnce() -> String, now_ms: i64) -> Result<Draft, BrokerError> {
    let mut d = Draft {
        body: m.body,
        body_encoding: if m.sys_flag & SYSFLAG_COMPRESSED != 0 { encoding::ZLIB } else { encoding::IDENTITY },
        born_ms: m.born_ms,
        born_host: m.born_host,
        ..Draft::default()
    };
    for (k, v) in parse_properties(m.properties) {
        match k.as_str() {
            "UNIQ_KEY" => d.message_id = v,
            "TAGS" => d.tag = Some(v),
            "KEYS" => d.keys = v.split(' ').filter(|k| !k.is_empty()).map(str::to_string).collect(),
            "DELAY" => {
                let level: i64 = v.trim().parse().map_err(|_| {
                    BrokerError::bad_request(format!("property DELAY is {v:?}, not a delay level"))
                })?;
                d.delivery_ms = delay_ms(level).map(|ms| now_ms + ms);
            }
            "TRAN_MSG" => d.transaction = v.eq_ignore_ascii_case("true"),
            _ => d.properties.push((k, v)),
        }
    }
    if d.message_id.is_empty() {
        d.message_id = new_id();
    }
    if m.flag != 0 {
        d.properties.push((props::FLAG.to_string(), m.flag.to_string()));
    }
    if let Some(n) = m.reconsume_times.filter(|n| *n > 0)
        && !d.properties.iter().any(|(k, _)| k == RECONSUME_TIMES)
    {
        d.properties.push((RECONSUME_TIMES.to_string(), n.to_string()));
    }
    Ok(d)
}

/// The body as a 4.x consumer reads it and the sysFlag that says how: zlib bodies (a 4.x
/// producer's) as stored, flagged; gzip bodies (a 5.x producer's) inflated.
fn body_for_v4<'a>(view: &RecordView<'a>) -> (std::borrow::Cow<'a, [u8]>, i32) {
    match view.body_encoding {
        encoding::ZLIB => (view.body.into(), SYSFLAG_COMPRESSED),
        encoding::GZIP => {
            let mut out = Vec::new();
            match flate2::read::GzDecoder::new(view.body).read_to_end(&mut out) {
                Ok(_) => (out.into(), 0),
                Err(e) => {
                    tracing::warn!(message = view.message_id, error = %e, "stored gzip body does not inflate");
                    (view.body.into(), 0)
                }
            }
        }
        _ => (view.body.into(), 0),
    }
}

/// Where a stored message is, as a 4.x consumer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    /// Its 4.x queue id (index among its broker's queues of the topic).
    pub queue_id: i32,
    /// Its physical offset ([`crate::broker::location::Location`]).
    pub physical_offset: i64,
    /// The store host in its ids.
    pub store_host: SocketAddrV4,
}

/// Appends `stored` (parsed as `view`) to `out` in the 4.x stored-message layout.
pub fn encode_stored(out: &mut BytesMut, stored: &StoredMessage, view: &RecordView<'_>, at: Place) {
    let mut pairs: Vec<(&str, String)> = Vec::with_capacity(view.properties.len() + 3);
    if let Some(t) = view.tag {
        pairs.push(("TAGS", t.to_string()));
    }
    if !view.keys.is_empty() {
        pairs.push(("KEYS", view.keys.join(" ")));
    }
    pairs.push(("UNIQ_KEY", view.message_id.to_string()));
    let mut flag = 0;
    let mut reconsume = 0;
    for (k, v) in &view.properties {
        match *k {
            props::FLAG => flag = v.parse().unwrap_or(0),
            RECONSUME_TIMES => {
                reconsume = v.parse().unwrap_or(0);
                pairs.push((*k, v.to_string()));
            }
            _ => pairs.push((*k, v.to_string())),
        }
    }
    let properties = write_properties(pairs.iter().map(|(k, v)| (*k, v.as_str())));
    let (body, sys_flag) = body_for_v4(view);
    Stored {
        queue_id: at.queue_id,
        flag,
        queue_offset: stored.offset as i64,
        physical_offset: at.physical_offset,
        sys_flag,
        born_ms: view.born_ms,
        born_host: socket_v4(view.born_host),
        store_ms: stored.store_ms,
        store_host: at.store_host,
        reconsume_times: reconsume,
        body: &body,
        topic: view.topic,
        properties: &properties,
    }
    .encode(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_message_becomes_a_draft() {
        let props = write_properties([
            ("UNIQ_KEY", "ID1"),
            ("TAGS", "TagA"),
            ("KEYS", "k1 k2"),
            ("WAIT", "true"),
            ("color", "red"),
            ("DELAY", "3"),
        ]);
        let m = Sent {
            properties: &props,
            body: Bytes::from_static(b"x"),
            flag: 7,
            sys_flag: SYSFLAG_COMPRESSED,
            born_ms: Some(5),
            born_host: "1.2.3.4:5".into(),
            reconsume_times: Some(2),
        };
        let d = draft(m, || "NEW".into(), 1_000).unwrap();
        assert_eq!(d.message_id, "ID1");
        assert_eq!(d.tag.as_deref(), Some("TagA"));
        assert_eq!(d.keys, vec!["k1", "k2"]);
        assert_eq!(d.delivery_ms, Some(11_000), "level 3 is 10 s");
        assert_eq!(d.body_encoding, encoding::ZLIB);
        assert!(d.properties.contains(&("WAIT".into(), "true".into())));
        assert!(d.properties.contains(&("color".into(), "red".into())));
        assert!(d.properties.contains(&(props::FLAG.into(), "7".into())));
        assert!(d.properties.contains(&(RECONSUME_TIMES.into(), "2".into())));
        let none = Sent { properties: "", ..Sent { properties: "", ..m_default() } };
        assert_eq!(draft(none, || "NEW".into(), 0).unwrap().message_id, "NEW");
        let bad = Sent { properties: "DELAY\u{1}x", ..m_default() };
        assert!(draft(bad, || "NEW".into(), 0).is_err());
    }

    fn m_default() -> Sent<'static> {
        Sent {
            properties: "",
            body: Bytes::from_static(b"x"),
            flag: 0,
            sys_flag: 0,
            born_ms: None,
            born_host: String::new(),
            reconsume_times: None,
        }
    }

    #[test]
    fn delay_levels_clamp() {
        assert_eq!(delay_ms(0), None);
        assert_eq!(delay_ms(1), Some(1_000));
        assert_eq!(delay_ms(18), Some(7_200_000));
        assert_eq!(delay_ms(40), Some(7_200_000));
    }
}
