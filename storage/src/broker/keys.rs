//! Key layout of a broker group's state machine, under the group's prefix in the `sm` column
//! family. One-letter prefixes; integers big-endian so keys sort numerically.
//!
//! | key | value |
//! | --- | --- |
//! | `T` topic name | topic id (u32), assigned in apply order |
//! | `N` topic id, queue | next offset (u64), min offset (u64) |
//! | `Q` topic id, queue, offset | consume-queue unit: log index, position, length, store time, tag hash |
//! | `I` message id | topic id, queue, offset |
//! | `K` topic id, key length (u16), key, queue, offset | nothing |
//! | `C` group length (u16), group, topic id, queue | committed consumer offset (u64) |
//! | `F` | retention floor: lowest log index a stored message may live at (u64) |
//! | `P` group length (u16), group, topic id, queue | pop cursor: next offset never handed out |
//! | `R` group length (u16), group, topic id, queue, offset | in-flight message: deadline, attempt, epoch |
//! | `D` delivery time, log index, position | pending timer: record length, message id |
//! | `H` log index, position | pending half message: topic id, length, id, checks, last check |
//! | `L` group, topic, queue (length-prefixed strings) | queue lock: client id, expiry |

use crate::keys::group_key;
use crate::types::GroupId;

pub(crate) const TOPIC: u8 = b'T';
pub(crate) const QUEUE: u8 = b'N';
pub(crate) const CQ: u8 = b'Q';
pub(crate) const MSG_ID: u8 = b'I';
pub(crate) const KEY: u8 = b'K';
pub(crate) const CONSUMER: u8 = b'C';
pub(crate) const FLOOR: u8 = b'F';
pub(crate) const POP_CURSOR: u8 = b'P';
pub(crate) const POP_INFLIGHT: u8 = b'R';
pub(crate) const TIMER: u8 = b'D';
pub(crate) const HALF: u8 = b'H';
pub(crate) const LOCK: u8 = b'L';

/// `L` queue lock.
pub(crate) fn lock(g: GroupId, k: &super::locks::LockKey) -> Vec<u8> {
    group_key(g, &[&[LOCK][..], &super::locks::key_suffix(k)].concat())
}

/// `H` pending half message.
pub(crate) fn half(g: GroupId, k: &super::txn::HalfKey) -> Vec<u8> {
    group_key(g, &[&[HALF][..], &super::txn::key_suffix(k)].concat())
}

/// `D` pending timer.
pub(crate) fn timer(g: GroupId, k: &super::timers::TimerKey) -> Vec<u8> {
    group_key(g, &[&[TIMER][..], &super::timers::key_suffix(k)].concat())
}

/// `F` retention floor.
pub(crate) fn floor(g: GroupId) -> Vec<u8> {
    group_key(g, &[FLOOR])
}

/// `T` topic.
pub(crate) fn topic(g: GroupId, name: &str) -> Vec<u8> {
    group_key(g, &[&[TOPIC], name.as_bytes()].concat())
}

fn tq(prefix: u8, topic_id: u32, queue: u32) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..5].copy_from_slice(&topic_id.to_be_bytes());
    k[5..9].copy_from_slice(&queue.to_be_bytes());
    k
}

/// `N` queue state.
pub(crate) fn queue(g: GroupId, topic_id: u32, queue: u32) -> Vec<u8> {
    group_key(g, &tq(QUEUE, topic_id, queue))
}

/// `Q` consume-queue unit.
pub(crate) fn cq(g: GroupId, topic_id: u32, queue: u32, offset: u64) -> Vec<u8> {
    group_key(g, &[&tq(CQ, topic_id, queue)[..], &offset.to_be_bytes()].concat())
}

/// `I` topic id, message id (per topic: a retry or dead-letter copy keeps the id of its original,
/// and both stay findable).
pub(crate) fn msg_id(g: GroupId, topic_id: u32, id: &str) -> Vec<u8> {
    group_key(g, &[&[MSG_ID][..], &topic_id.to_be_bytes(), id.as_bytes()].concat())
}

/// `K` key index entry; `key_prefix` without queue and offset gives the scan prefix of a key.
pub(crate) fn key_prefix(g: GroupId, topic_id: u32, key: &str) -> Vec<u8> {
    let mut k = vec![KEY];
    k.extend_from_slice(&topic_id.to_be_bytes());
    k.extend_from_slice(&(key.len() as u16).to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    group_key(g, &k)
}

/// `K` key index entry.
pub(crate) fn key(g: GroupId, topic_id: u32, key: &str, queue: u32, offset: u64) -> Vec<u8> {
    let mut k = key_prefix(g, topic_id, key);
    k.extend_from_slice(&queue.to_be_bytes());
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// `C` prefix of a consumer group.
pub(crate) fn consumer_prefix(g: GroupId, group: &str) -> Vec<u8> {
    let mut k = vec![CONSUMER];
    k.extend_from_slice(&(group.len() as u16).to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    group_key(g, &k)
}

/// `C` committed offset.
pub(crate) fn consumer(g: GroupId, group: &str, topic_id: u32, queue: u32) -> Vec<u8> {
    let mut k = consumer_prefix(g, group);
    k.extend_from_slice(&topic_id.to_be_bytes());
    k.extend_from_slice(&queue.to_be_bytes());
    k
}

/// A consume-queue unit: where a message lives in the CommitLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    /// Raft log index of the entry holding the message.
    pub log_index: u64,
    /// Byte offset of the record in the entry's batch payload.
    pub pos: u32,
    /// Record length.
    pub len: u32,
    /// Store time (leader clock at append), ms.
    pub store_ms: i64,
    /// Hash of the tag (0 without tag), for server-side tag filtering without reading the log.
    pub tag_hash: u32,
}

impl CqUnit {
    /// Encoded size.
    pub const LEN: usize = 28;

    /// Encodes the unit.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..8].copy_from_slice(&self.log_index.to_be_bytes());
        b[8..12].copy_from_slice(&self.pos.to_be_bytes());
        b[12..16].copy_from_slice(&self.len.to_be_bytes());
        b[16..24].copy_from_slice(&self.store_ms.to_be_bytes());
        b[24..28].copy_from_slice(&self.tag_hash.to_be_bytes());
        b
    }

    /// Decodes a unit.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap_or_default());
        Some(Self {
            log_index: u64_at(0),
            pos: u32_at(8),
            len: u32_at(12),
            store_ms: u64_at(16) as i64,
            tag_hash: u32_at(24),
        })
    }
}

/// Tag hash stored in consume-queue units (FNV-1a, never 0 for a tag).
pub fn tag_hash(tag: Option<&str>) -> u32 {
    let Some(t) = tag else { return 0 };
    let mut h: u32 = 0x811c_9dc5;
    for b in t.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}
