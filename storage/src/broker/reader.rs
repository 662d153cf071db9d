//! Reads of a broker group's data: consume-queue units, messages out of the CommitLog, indexes and
//! committed offsets. Blocking RocksDB calls: run them with `spawn_blocking`.

use bytes::Bytes;
use openraft::EntryPayload;
use rocksdb::Direction;
use rocksdb::IteratorMode;
use rocksdb::ReadOptions;

use super::keys;
use super::keys::CqUnit;
use super::record::RecordPos;
use crate::command::Command;
use crate::error::Result;
use crate::error::StorageError;
use crate::log_store::LogStore;
use crate::store::CF_SM;
use crate::store::Store;
use crate::types::GroupId;

/// A stored message: its queue offset, store time and host, and its record (zero-copy out of the
/// log entry; parse it with [`super::record::RecordView::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Queue offset.
    pub offset: u64,
    /// Store time, ms.
    pub store_ms: i64,
    /// Store host (the leader that appended it).
    pub store_host: String,
    /// Raft log index of its entry.
    pub log_index: u64,
    /// Which record of the entry's batch it is (0-based): with `log_index`, the message's place
    /// in the log, from which the 4.x protocol's physical offsets are made.
    pub ordinal: u32,
    /// The record.
    pub record: Bytes,
}

fn corrupt(what: &'static str, reason: String) -> StorageError {
    StorageError::Corruption { what, reason }
}

/// The ordinal of the record of `len` bytes that starts at byte `pos` of a batch with record
/// `positions`.
fn ordinal_of(positions: &[RecordPos], pos: u32, len: u32) -> Option<u32> {
    let i = positions.binary_search_by_key(&pos, |p| p.pos).ok()?;
    (positions[i].len == len).then_some(i as u32)
}

/// Consume-queue units of a queue from `from`, at most `max`, below `end`.
pub fn cq_units(
    store: &Store,
    group: GroupId,
    topic_id: u32,
    queue: u32,
    from: u64,
    end: u64,
    max: usize,
) -> Result<Vec<(u64, CqUnit)>> {
    let mut out = Vec::new();
    if from >= end || max == 0 {
        return Ok(out);
    }
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(keys::cq(group, topic_id, queue, end));
    let start = keys::cq(group, topic_id, queue, from);
    for kv in store.db().iterator_cf_opt(store.cf(CF_SM)?, ro, IteratorMode::From(&start, Direction::Forward))
    {
        let (k, v) = kv?;
        let offset = k
            .len()
            .checked_sub(8)
            .and_then(|i| k[i..].try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("consume queue", format!("bad key {k:?}")))?;
        let unit = CqUnit::decode(&v)
            .ok_or_else(|| corrupt("consume queue", format!("bad unit at offset {offset}")))?;
        out.push((offset, unit));
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// The append batch stored at `log_index`, from the log's memory tail or from the segment log
/// (including entries openraft purged but retention keeps).
pub fn append_entry(log: &LogStore, log_index: u64) -> Result<Option<(i64, String, Bytes)>> {
    let Some(entry) = log.entry(log_index)? else { return Ok(None) };
    match entry.payload {
        EntryPayload::Normal(Command::Append(a)) => Ok(Some((a.store_ms, a.store_host, a.batch))),
        EntryPayload::Normal(Command::Move(d)) => {
            Ok(Some((d.append.store_ms, d.append.store_host, d.append.batch)))
        }
        EntryPayload::Normal(Command::Deliver(d)) => {
            Ok(Some((d.append.store_ms, d.append.store_host, d.append.batch)))
        }
        EntryPayload::Normal(Command::Txn(crate::broker::txn::TxnCmd {
            op: crate::broker::txn::TxnOp::Commit(a),
            ..
        })) => Ok(Some((a.store_ms, a.store_host, a.batch))),
        _ => Err(corrupt("consume queue", format!("entry {log_index} is not an append"))),
    }
}

/// The record at `pos..pos + len` of the batch in entry `log_index`, with the entry's store time
/// and host; `None` if the entry is gone (purged) or holds no record of that place and length.
pub fn record_at(log: &LogStore, log_index: u64, pos: u32, len: u32) -> Result<Option<StoredMessage>> {
    record_in_entry(log, log_index, |records| ordinal_of(records, pos, len))
}

/// The message whose record is the `ordinal`-th of entry `log_index`'s batch, if the entry is a
/// stored append (of any kind) that long. Its queue offset is not known here (0).
pub fn record_by_ordinal(log: &LogStore, log_index: u64, ordinal: u32) -> Result<Option<StoredMessage>> {
    record_in_entry(log, log_index, |records| ((ordinal as usize) < records.len()).then_some(ordinal))
}

/// The record of entry `log_index` that `pick` chooses (by ordinal) among the entry's records.
fn record_in_entry(
    log: &LogStore,
    log_index: u64,
    pick: impl FnOnce(&[RecordPos]) -> Option<u32>,
) -> Result<Option<StoredMessage>> {
    let Some((store_ms, store_host, batch)) = append_entry(log, log_index)? else {
        return Ok(None);
    };
    let records = super::record::record_positions(&batch)?;
    let Some(ordinal) = pick(&records) else { return Ok(None) };
    let p = records[ordinal as usize];
    Ok(Some(StoredMessage {
        offset: 0,
        store_ms,
        store_host,
        log_index,
        ordinal,
        record: batch.slice(p.pos as usize..p.pos as usize + p.len as usize),
    }))
}

/// Reads the messages the units point at. A unit whose entry is gone (removed by retention in the
/// meantime) ends the result early.
pub fn messages(log: &LogStore, units: &[(u64, CqUnit)]) -> Result<Vec<StoredMessage>> {
    let mut out = Vec::with_capacity(units.len());
    let mut current: Option<(u64, i64, String, Bytes, Vec<RecordPos>)> = None;
    for (offset, u) in units {
        if current.as_ref().map(|c| c.0) != Some(u.log_index) {
            match append_entry(log, u.log_index)? {
                Some((ms, host, batch)) => {
                    let positions = super::record::record_positions(&batch)?;
                    current = Some((u.log_index, ms, host, batch, positions));
                }
                None => break,
            }
        }
        let Some((_, store_ms, host, batch, positions)) = &current else { break };
        let (start, end) = (u.pos as usize, u.pos as usize + u.len as usize);
        let ordinal = ordinal_of(positions, u.pos, u.len).ok_or_else(|| {
            corrupt(
                "consume queue",
                format!("offset {offset} points past or inside a record of entry {}", u.log_index),
            )
        })?;
        out.push(StoredMessage {
            offset: *offset,
            store_ms: *store_ms,
            store_host: host.clone(),
            log_index: u.log_index,
            ordinal,
            record: batch.slice(start..end),
        });
    }
    Ok(out)
}

/// Where the message of topic `topic_id` with client id `id` is: `(queue, offset)`.
pub fn find_id(store: &Store, group: GroupId, topic_id: u32, id: &str) -> Result<Option<(u32, u64)>> {
    let Some(v) = store.db().get_pinned_cf(store.cf(CF_SM)?, keys::msg_id(group, topic_id, id))? else {
        return Ok(None);
    };
    let mut r = crate::codec::Reader::new(&v, "message id index");
    let loc = (r.u32()?, r.u64()?);
    r.finish()?;
    Ok(Some(loc))
}

/// Messages of a topic with key `key`: `(queue, offset)`, at most `max`, oldest first.
pub fn find_key(
    store: &Store,
    group: GroupId,
    topic_id: u32,
    key: &str,
    max: usize,
) -> Result<Vec<(u32, u64)>> {
    let prefix = keys::key_prefix(group, topic_id, key);
    let mut upper = prefix.clone();
    upper.push(0xff);
    upper.extend_from_slice(&[0xff; 12]);
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(upper);
    let mut out = Vec::new();
    for kv in
        store.db().iterator_cf_opt(store.cf(CF_SM)?, ro, IteratorMode::From(&prefix, Direction::Forward))
    {
        let (k, _) = kv?;
        if !k.starts_with(&prefix) || k.len() != prefix.len() + 12 {
            continue;
        }
        let t = &k[prefix.len()..];
        let queue = u32::from_be_bytes(t[..4].try_into().unwrap_or_default());
        let offset = u64::from_be_bytes(t[4..].try_into().unwrap_or_default());
        out.push((queue, offset));
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// The first offset in `[min, end)` of a queue whose store time is at or after `ms` (`end` if
/// none). Store times follow log order, so a binary search over the queue works.
pub fn offset_for_time(
    store: &Store,
    group: GroupId,
    topic_id: u32,
    queue: u32,
    min: u64,
    end: u64,
    ms: i64,
) -> Result<u64> {
    let (mut lo, mut hi) = (min, end);
    let cf = store.cf(CF_SM)?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let unit = store
            .db()
            .get_pinned_cf(cf, keys::cq(group, topic_id, queue, mid))?
            .and_then(|v| CqUnit::decode(&v));
        match unit {
            Some(u) if u.store_ms < ms => lo = mid + 1,
            Some(_) => hi = mid,
            // Removed by retention meanwhile: everything below is older.
            None => lo = mid + 1,
        }
    }
    Ok(lo)
}

/// Most messages one retention pass removes from a queue (bounds the work of one apply).
pub const RETAIN_PER_QUEUE_MAX: u64 = 100_000;

/// Plans a retention pass: for each queue of a topic in `cuts`, the messages stored before the
/// topic's cut time go (at most [`RETAIN_PER_QUEUE_MAX`]), with their index entries; then the
/// new floor. Reads only state that every replica has at the same applied index, so every
/// replica plans the same. Blocking.
pub fn plan_retain(
    store: &Store,
    log: &LogStore,
    state: &super::state::BrokerState,
    cuts: &[(String, i64)],
    next_log_index: u64,
) -> Result<super::state::RetainPlan> {
    use super::record::RecordView;
    use super::state::QueueExpiry;
    let group = state.group();
    let mut plan = super::state::RetainPlan::default();
    let mut mins: std::collections::HashMap<(u32, u32), u64> =
        state.queues.iter().map(|(k, q)| (*k, q.min)).collect();
    for (topic, cut) in cuts {
        let Some(tid) = state.topic_id(topic) else { continue };
        let mut queues: Vec<(u32, super::state::QueueState)> =
            state.queues.iter().filter(|((t, _), _)| *t == tid).map(|((_, q), st)| (*q, *st)).collect();
        queues.sort_unstable_by_key(|(q, _)| *q);
        for (queue, st) in queues {
            if st.min >= st.next {
                continue;
            }
            let limit = st.next.min(st.min + RETAIN_PER_QUEUE_MAX);
            let new_min = offset_for_time(store, group, tid, queue, st.min, limit, *cut)?;
            if new_min <= st.min {
                continue;
            }
            let units = cq_units(store, group, tid, queue, st.min, new_min, usize::MAX)?;
            let mut e = QueueExpiry { topic_id: tid, queue, new_min, ids: Vec::new(), keys: Vec::new() };
            for m in messages(log, &units)? {
                let v = RecordView::parse(&m.record)?;
                e.ids.push(v.message_id.to_string());
                e.keys.extend(v.keys.iter().map(|k| (k.to_string(), m.offset)));
            }
            mins.insert((tid, queue), new_min);
            plan.expiries.push(e);
        }
    }
    // The floor: the lowest log index of any message still stored.
    let mut floor = next_log_index;
    for ((tid, queue), st) in &state.queues {
        let min = mins.get(&(*tid, *queue)).copied().unwrap_or(st.min);
        if min >= st.next {
            continue;
        }
        if let Some((_, u)) = cq_units(store, group, *tid, *queue, min, min + 1, 1)?.first() {
            floor = floor.min(u.log_index);
        }
    }
    // A delayed message waiting for its time lives in its original entry.
    // So does a half message waiting for its transaction to end.
    if let Some(log_index) =
        state.timers.pending.keys().map(|k| k.1).chain(state.halves.pending.keys().map(|k| k.0)).min()
    {
        floor = floor.min(log_index);
    }
    plan.floor = floor.max(state.floor);
    Ok(plan)
}
