//! On-disk and on-wire encoding of openraft's own types: log ids, votes, memberships, entries and
//! snapshot metadata. Written by hand (openraft's `serde` feature stays off) so the bytes are ours
//! to keep stable; `raft_codec/tests.rs` pins them.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use openraft::EntryPayload;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::command::Command;
use crate::error::DecodeError;
use crate::types::CommittedLeaderId;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::Membership;
use crate::types::NodeInfo;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::Vote;

/// Version byte at the start of every encoded entry.
const ENTRY_V1: u8 = 1;

mod payload_tag {
    pub(super) const BLANK: u8 = 0;
    pub(super) const NORMAL: u8 = 1;
    pub(super) const MEMBERSHIP: u8 = 2;
}

/// Writes a log id.
pub fn put_log_id(w: &mut Writer, id: &LogId) {
    w.u64(id.leader_id.term).u64(id.leader_id.node_id).u64(id.index);
}

/// Reads a log id.
pub fn get_log_id(r: &mut Reader<'_>) -> Result<LogId, DecodeError> {
    let term = r.u64()?;
    let node_id = r.u64()?;
    let index = r.u64()?;
    Ok(LogId::new(CommittedLeaderId { term, node_id }, index))
}

/// Writes an optional log id.
pub fn put_opt_log_id(w: &mut Writer, id: Option<&LogId>) {
    match id {
        Some(id) => {
            w.u8(1);
            put_log_id(w, id);
        }
        None => {
            w.u8(0);
        }
    }
}

/// Reads an optional log id.
pub fn get_opt_log_id(r: &mut Reader<'_>) -> Result<Option<LogId>, DecodeError> {
    if r.bool()? { Ok(Some(get_log_id(r)?)) } else { Ok(None) }
}

/// Encodes a log id on its own.
pub fn encode_log_id(id: &LogId) -> Vec<u8> {
    let mut w = Writer::with_capacity(24);
    put_log_id(&mut w, id);
    w.into_vec()
}

/// Decodes [`encode_log_id`].
pub fn decode_log_id(b: &[u8]) -> Result<LogId, DecodeError> {
    let mut r = Reader::new(b, "log id");
    let id = get_log_id(&mut r)?;
    r.finish()?;
    Ok(id)
}

/// Encodes a vote.
pub fn encode_vote(v: &Vote) -> Vec<u8> {
    let mut w = Writer::with_capacity(17);
    w.u64(v.leader_id.term).u64(v.leader_id.node_id).bool(v.committed);
    w.into_vec()
}

/// Decodes [`encode_vote`].
pub fn decode_vote(b: &[u8]) -> Result<Vote, DecodeError> {
    let mut r = Reader::new(b, "vote");
    let term = r.u64()?;
    let node_id = r.u64()?;
    let committed = r.bool()?;
    r.finish()?;
    Ok(if committed { Vote::new_committed(term, node_id) } else { Vote::new(term, node_id) })
}

/// Writes a membership: the joint voter configs and every node with its addresses.
pub fn put_membership(w: &mut Writer, m: &Membership) {
    let configs = m.get_joint_config();
    w.u32(configs.len() as u32);
    for c in configs {
        w.u32(c.len() as u32);
        for id in c {
            w.u64(*id);
        }
    }
    let nodes: Vec<_> = m.nodes().collect();
    w.u32(nodes.len() as u32);
    for (id, n) in nodes {
        w.u64(*id).str(&n.raft_addr).str(&n.client_addr);
    }
}

/// Reads a membership; an invalid one (a voter without a node) is a decode error.
pub fn get_membership(r: &mut Reader<'_>) -> Result<Membership, DecodeError> {
    let n_configs = r.u32()?;
    let mut configs = Vec::new();
    for _ in 0..n_configs {
        let n = r.u32()?;
        let mut c = BTreeSet::new();
        for _ in 0..n {
            c.insert(r.u64()?);
        }
        configs.push(c);
    }
    let n_nodes = r.u32()?;
    let mut nodes = BTreeMap::new();
    for _ in 0..n_nodes {
        let id = r.u64()?;
        let raft_addr = r.str()?.to_string();
        let client_addr = r.str()?.to_string();
        nodes.insert(id, NodeInfo { raft_addr, client_addr });
    }
    Membership::new(configs, nodes).map_err(|e| DecodeError::new("membership", e.to_string()))
}

/// Writes a membership with the log id that introduced it.
pub fn put_stored_membership(w: &mut Writer, m: &StoredMembership) {
    put_opt_log_id(w, m.log_id().as_ref());
    put_membership(w, m.membership());
}

/// Reads [`put_stored_membership`].
pub fn get_stored_membership(r: &mut Reader<'_>) -> Result<StoredMembership, DecodeError> {
    let log_id = get_opt_log_id(r)?;
    let m = get_membership(r)?;
    Ok(StoredMembership::new(log_id, m))
}

/// Encodes a log entry. `w` is cleared first so callers can reuse one buffer.
pub fn encode_entry(w: &mut Writer, e: &Entry) {
    w.clear();
    w.u8(ENTRY_V1);
    put_log_id(w, &e.log_id);
    match &e.payload {
        EntryPayload::Blank => {
            w.u8(payload_tag::BLANK);
        }
        EntryPayload::Normal(cmd) => {
            w.u8(payload_tag::NORMAL);
            cmd.encode(w);
        }
        EntryPayload::Membership(m) => {
            w.u8(payload_tag::MEMBERSHIP);
            put_membership(w, m);
        }
    }
}

/// Decodes an entry written by [`encode_entry`]. Takes `Bytes` so large payloads can be sliced
/// out without a copy.
pub fn decode_entry(b: &Bytes) -> Result<Entry, DecodeError> {
    let mut r = Reader::new(b, "log entry");
    match r.u8()? {
        ENTRY_V1 => {}
        v => return Err(DecodeError::new("log entry", format!("unknown entry version {v}"))),
    }
    let log_id = get_log_id(&mut r)?;
    let payload = match r.u8()? {
        payload_tag::BLANK => EntryPayload::Blank,
        payload_tag::NORMAL => EntryPayload::Normal(Command::decode(&mut r, b)?),
        payload_tag::MEMBERSHIP => EntryPayload::Membership(get_membership(&mut r)?),
        t => return Err(DecodeError::new("log entry", format!("unknown payload tag {t}"))),
    };
    r.finish()?;
    Ok(Entry { log_id, payload })
}

/// Index of an encoded entry, read without decoding the payload.
pub fn entry_index(b: &[u8]) -> Result<u64, DecodeError> {
    let mut r = Reader::new(b, "log entry");
    r.u8()?;
    Ok(get_log_id(&mut r)?.index())
}

/// Encodes snapshot metadata.
pub fn put_snapshot_meta(w: &mut Writer, m: &SnapshotMeta) {
    put_opt_log_id(w, m.last_log_id.as_ref());
    put_stored_membership(w, &m.last_membership);
}

/// Decodes snapshot metadata.
pub fn get_snapshot_meta(r: &mut Reader<'_>) -> Result<SnapshotMeta, DecodeError> {
    let last_log_id = get_opt_log_id(r)?;
    let last_membership = get_stored_membership(r)?;
    Ok(SnapshotMeta { last_log_id, last_membership })
}

#[cfg(test)]
mod tests;
