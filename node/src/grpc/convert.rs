//! Conversions between stored messages and `apache.rocketmq.v2` wire messages.

use std::net::IpAddr;

use raftmq_proto::prost_types::Timestamp;
use raftmq_proto::rocketmq as pb;
use raftmq_storage::broker::reader::StoredMessage;
use raftmq_storage::broker::record::RecordView;
use raftmq_storage::broker::record::StoredType;
use raftmq_storage::nameserver::MessageType;
use raftmq_storage::nameserver::Permission;
use raftmq_storage::nameserver::names;

use crate::broker::moves::RECONSUME_TIMES;
use crate::broker::moves::RETRY_TOPIC;
use crate::broker::moves::origin_topic;
use crate::broker::props;
use crate::broker::send::encoding;

/// A wire timestamp from ms since the epoch.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
}

/// Ms since the epoch from a wire timestamp.
pub fn millis(t: &Timestamp) -> i64 {
    t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// The wire message type of a stored one.
pub fn message_type(t: StoredType) -> pb::MessageType {
    match t {
        StoredType::Normal => pb::MessageType::Normal,
        StoredType::Fifo => pb::MessageType::Fifo,
        StoredType::Delay => pb::MessageType::Delay,
        StoredType::Transaction => pb::MessageType::Transaction,
    }
}

/// Message types a topic accepts, as a route lists them.
pub fn accepted_types(t: MessageType) -> Vec<i32> {
    let all = [
        pb::MessageType::Normal,
        pb::MessageType::Fifo,
        pb::MessageType::Delay,
        pb::MessageType::Transaction,
    ];
    match t {
        MessageType::Normal => vec![pb::MessageType::Normal as i32],
        MessageType::Fifo => vec![pb::MessageType::Fifo as i32],
        MessageType::Delay => vec![pb::MessageType::Delay as i32],
        MessageType::Transaction => vec![pb::MessageType::Transaction as i32],
        MessageType::Mixed => all.iter().map(|t| *t as i32).collect(),
    }
}

/// The wire permission of a topic.
pub fn permission(p: Permission) -> pb::Permission {
    match p {
        Permission::Read => pb::Permission::Read,
        Permission::Write => pb::Permission::Write,
        Permission::ReadWrite => pb::Permission::ReadWrite,
    }
}

/// Endpoints of a `host:port` address, with the scheme clients need (IPv4, IPv6 or DNS name).
pub fn endpoints(addr: &str) -> pb::Endpoints {
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p.parse().unwrap_or(0)),
        None => (addr, 0),
    };
    let scheme = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => pb::AddressScheme::IPv4,
        Ok(IpAddr::V6(_)) => pb::AddressScheme::IPv6,
        Err(_) => pb::AddressScheme::DomainName,
    };
    pb::Endpoints { scheme: scheme as i32, addresses: vec![pb::Address { host: host.to_string(), port }] }
}

/// A zlib body (a 4.x producer's compressed message) inflated; as stored if it does not inflate.
fn inflate_zlib(view: &RecordView<'_>) -> bytes::Bytes {
    use std::io::Read;
    let mut out = Vec::new();
    match flate2::read::ZlibDecoder::new(view.body).read_to_end(&mut out) {
        Ok(_) => out.into(),
        Err(e) => {
            tracing::warn!(message = view.message_id, error = %e, "stored zlib body does not inflate");
            bytes::Bytes::copy_from_slice(view.body)
        }
    }
}

/// A delivered message with every system property the official clients read.
pub fn delivered(
    stored: &StoredMessage,
    view: &RecordView<'_>,
    delivery_attempt: i32,
    receipt_handle: Option<String>,
) -> pb::Message {
    // The body is a slice of the CommitLog entry in memory: no copy on the way out (a 4.x
    // producer's zlib body, which gRPC cannot flag, is inflated, with the digest of what is sent).
    let (body, checksum) = if view.body_encoding == encoding::ZLIB {
        let b = inflate_zlib(view);
        let digest = hex::encode_upper(<md5::Md5 as md5::Digest>::digest(&b));
        (b, digest)
    } else {
        (stored.record.slice_ref(view.body), hex::encode_upper(view.body_md5))
    };
    let system = pb::SystemProperties {
        tag: view.tag.map(str::to_string),
        keys: view.keys.iter().map(|k| k.to_string()).collect(),
        message_id: view.message_id.to_string(),
        body_digest: Some(pb::Digest { r#type: pb::DigestType::Md5 as i32, checksum }),
        body_encoding: if view.body_encoding == pb::Encoding::Gzip as u8 {
            pb::Encoding::Gzip as i32
        } else {
            pb::Encoding::Identity as i32
        },
        message_type: message_type(view.message_type) as i32,
        born_timestamp: Some(timestamp(view.born_ms)),
        born_host: view.born_host.to_string(),
        store_timestamp: Some(timestamp(stored.store_ms)),
        store_host: stored.store_host.clone(),
        delivery_timestamp: view.delivery_ms.map(timestamp),
        receipt_handle,
        queue_id: view.queue_id as i32,
        queue_offset: Some(stored.offset as i64),
        invisible_duration: None,
        delivery_attempt: Some(delivery_attempt),
        message_group: view.message_group.map(str::to_string),
        trace_context: view.trace_context.map(str::to_string),
        orphaned_transaction_recovery_duration: None,
        dead_letter_queue: None,
        lite_topic: None,
        priority: None,
    };
    // A retry copy shows as the message it copies: its original topic, the user's properties
    // (without its retry bookkeeping); RocketMQ's reserved properties are never shown.
    let retry = names::is_retry_topic(view.topic);
    pb::Message {
        topic: Some(pb::Resource { resource_namespace: String::new(), name: origin_topic(view).to_string() }),
        user_properties: view
            .properties
            .iter()
            .filter(|(k, _)| !(props::is_system(k) || retry && [RETRY_TOPIC, RECONSUME_TIMES].contains(k)))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        system_properties: Some(system),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_have_the_right_scheme() {
        let e = endpoints("127.0.0.1:8081");
        assert_eq!(e.scheme, pb::AddressScheme::IPv4 as i32);
        assert_eq!(e.addresses[0], pb::Address { host: "127.0.0.1".into(), port: 8081 });
        assert_eq!(endpoints("[::1]:9").scheme, pb::AddressScheme::IPv6 as i32);
        let d = endpoints("node-1:8081");
        assert_eq!(
            (d.scheme, d.addresses[0].host.as_str()),
            (pb::AddressScheme::DomainName as i32, "node-1")
        );
    }

    #[test]
    fn times() {
        assert_eq!(millis(&timestamp(1_700_000_000_123)), 1_700_000_000_123);
        assert_eq!(timestamp(-1).nanos, 999_000_000);
    }
}
