//! The segment log's writer thread: the only code that writes segment files.
//!
//! Each turn it drains the queue, encodes every operation's record into one buffer, writes the
//! buffer with one `pwrite` (rolling to a new segment when the active one is full: the full one is
//! sealed and fsynced first), makes the entries readable, and, if any operation asked for
//! durability, runs one `fdatasync` before completing them. One thread and one fsync serve every
//! group of the node; what queues up during an fsync shares the next one. A failed write or fsync
//! fails every later operation (sticky), because nothing written after it may be reported durable.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;

use super::Done;
use super::LogOp;
use super::Shared;
use super::record;
use super::record::Kind;
use super::segment;

/// Most operations one turn takes from the queue.
const DRAIN_OPS_MAX: usize = 4096;
/// Most bytes one turn buffers before it writes them.
const DRAIN_BYTES_MAX: usize = 8 << 20;

/// A state change to make once the bytes behind it are written.
enum Change {
    Entry { group: u32, index: u64, seq: u64, off: u32, len: u32 },
    Truncate { group: u32, from: u64 },
    Purge { group: u32, first: u64, purged: Option<bytes::Bytes> },
    Vote { group: u32, vote: bytes::Bytes },
    Committed { group: u32, committed: bytes::Bytes },
}

pub(crate) struct WriterState {
    pub(crate) dir: PathBuf,
    pub(crate) segment_bytes: u64,
    pub(crate) before_sync: Option<super::SyncHook>,
    pub(crate) epoch: u32,
    pub(crate) seq: u64,
    pub(crate) file: Arc<File>,
    pub(crate) offset: u64,
}

struct Turn {
    buf: Vec<u8>,
    changes: Vec<Change>,
    written: Vec<super::OnWritten>,
    durable: Vec<super::OnDurable>,
    sync: bool,
    purged: bool,
}

pub(crate) fn run(shared: &Shared, mut w: WriterState, mut rx: mpsc::Receiver<LogOp>) {
    let mut failure: Option<String> = None;
    let mut ops = Vec::with_capacity(64);
    let mut turn = Turn {
        buf: Vec::with_capacity(1 << 20),
        changes: Vec::new(),
        written: Vec::new(),
        durable: Vec::new(),
        sync: false,
        purged: false,
    };
    while let Some(first) = rx.blocking_recv() {
        ops.push(first);
        let mut bytes = 0usize;
        while ops.len() < DRAIN_OPS_MAX && bytes < DRAIN_BYTES_MAX {
            match rx.try_recv() {
                Ok(op) => {
                    bytes += op.bytes();
                    ops.push(op);
                }
                Err(_) => break,
            }
        }
        let t0 = Instant::now();
        for op in ops.drain(..) {
            shared.stats.ops.fetch_add(1, Ordering::Relaxed);
            let (op, done) = op.split();
            if let Some(done) = done {
                take_done(&mut turn, done);
            }
            if failure.is_none()
                && let Err(e) = encode(shared, &mut w, &mut turn, op)
            {
                tracing::error!(error = %e, dir = %w.dir.display(), "segment log write failed; failing this and every later write");
                failure = Some(e);
            }
        }
        if failure.is_none()
            && let Err(e) =
                encode_committed(shared, &mut w, &mut turn).and_then(|()| flush(shared, &mut w, &mut turn))
        {
            tracing::error!(error = %e, dir = %w.dir.display(), "segment log write failed; failing this and every later write");
            failure = Some(e);
        }
        shared.stats.write_micros.fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        // Entries of a failed turn never become readable from the log: their cache keeps them.
        for f in turn.written.drain(..) {
            if failure.is_none() {
                f();
            }
        }
        if failure.is_none() && (turn.sync || turn.purged) {
            if let Some(hook) = &w.before_sync {
                (hook.0)();
            }
            let t = Instant::now();
            if let Err(e) = w.file.sync_data() {
                tracing::error!(error = %e, dir = %w.dir.display(), "segment log fsync failed; failing every write from now on");
                failure = Some(e.to_string());
            }
            let took = t.elapsed();
            shared.stats.sync_latency.observe(took);
            shared.stats.sync_micros_max.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        }
        if failure.is_none() && std::mem::take(&mut turn.purged) {
            delete_unreferenced(shared, &w);
        }
        let result = failure.clone().map_or(Ok(()), Err);
        shared.stats.synced_ops.fetch_add(turn.durable.len() as u64, Ordering::Relaxed);
        for f in turn.durable.drain(..) {
            f(result.clone());
        }
        turn.sync = false;
        if let Some(f) = &failure {
            shared.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| f.clone());
        }
    }
    // The queue closed: committed ids noted since the last turn go down with one more fsync.
    if failure.is_none() {
        let r = encode_committed(shared, &mut w, &mut turn)
            .and_then(|()| flush(shared, &mut w, &mut turn))
            .and_then(|()| w.file.sync_data().map_err(|e| e.to_string()));
        if let Err(e) = r {
            tracing::warn!(error = %e, dir = %w.dir.display(), "segment log: last committed ids not written at close");
        }
    }
}

/// Adds the committed ids noted since the last turn to this one, each once the entry it names is
/// written (in an earlier turn or earlier in this one): a committed id on disk never points past
/// the group's log. The others wait for a later turn.
///
/// Only the index is compared, not the term. That is enough because openraft truncates before it
/// appends conflicting entries and `LogStore::truncate_after` waits for its own fsync, so no
/// committed id of a newer term can be noted while the older term's entry at that index is still
/// the one on disk. Keep both true (an `Append` never replaces a tail by itself).
fn encode_committed(shared: &Shared, w: &mut WriterState, turn: &mut Turn) -> Result<(), String> {
    let noted = std::mem::take(&mut *shared.committed.lock().unwrap_or_else(|e| e.into_inner()));
    if noted.is_empty() {
        return Ok(());
    }
    // The last entry of each noted group written so far: in earlier turns, then in this one.
    let mut last: std::collections::BTreeMap<u32, u64> = {
        let view = shared.view.read().unwrap_or_else(|e| e.into_inner());
        noted.keys().filter_map(|g| Some((*g, view.groups.groups.get(g)?.last?))).collect()
    };
    for c in &turn.changes {
        if let Change::Entry { group, index, .. } = c {
            let l = last.entry(*group).or_insert(*index);
            *l = (*l).max(*index);
        }
    }
    let mut later = Vec::new();
    for (group, (index, committed)) in noted {
        if last.get(&group).is_some_and(|l| *l >= index) {
            encode(shared, w, turn, Op::Committed { group, committed })?;
        } else {
            later.push((group, (index, committed)));
        }
    }
    if !later.is_empty() {
        let mut pending = shared.committed.lock().unwrap_or_else(|e| e.into_inner());
        for (group, v) in later {
            // A newer id noted meanwhile wins.
            pending.entry(group).or_insert(v);
        }
    }
    Ok(())
}

/// An operation without its completion.
enum Op {
    Append { group: u32, entries: Vec<(u64, bytes::Bytes)> },
    Vote { group: u32, vote: bytes::Bytes },
    Committed { group: u32, committed: bytes::Bytes },
    Truncate { group: u32, from: u64 },
    Purge { group: u32, first: u64, purged: Option<bytes::Bytes> },
    Sync,
}

impl LogOp {
    fn bytes(&self) -> usize {
        match self {
            LogOp::Append { entries, .. } => entries.iter().map(|(_, b)| b.len()).sum(),
            _ => 64,
        }
    }

    fn split(self) -> (Op, Option<Done>) {
        match self {
            LogOp::Append { group, entries, done } => (Op::Append { group: group.0, entries }, Some(done)),
            LogOp::Vote { group, vote, done } => (Op::Vote { group: group.0, vote }, Some(done)),
            // Never queued (`SegLog::note`); written as any other record if it were.
            LogOp::Committed { group, committed, .. } => (Op::Committed { group: group.0, committed }, None),
            LogOp::Truncate { group, from } => (Op::Truncate { group: group.0, from }, None),
            LogOp::Purge { group, first, purged } => (Op::Purge { group: group.0, first, purged }, None),
            LogOp::Sync { done } => (Op::Sync, Some(done)),
        }
    }
}

fn take_done(turn: &mut Turn, done: Done) {
    if let Some(f) = done.on_written {
        turn.written.push(f);
    }
    turn.durable.push(done.on_durable);
    turn.sync = true;
}

/// Puts `op`'s records into the turn's buffer (rolling first if they do not fit).
fn encode(shared: &Shared, w: &mut WriterState, turn: &mut Turn, op: Op) -> Result<(), String> {
    let put = |w: &mut WriterState, turn: &mut Turn, kind: Kind, group: u32, index: u64, payload: &[u8]| {
        let len = record::encoded_len(payload.len());
        make_room(shared, w, turn, len)?;
        shared.stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
        let off = w.offset + turn.buf.len() as u64;
        record::encode(&mut turn.buf, kind, w.seq, w.epoch, group, index, payload);
        Ok::<(u64, u64), String>((w.seq, off))
    };
    match op {
        Op::Append { group, entries } => {
            for (index, payload) in entries {
                let (seq, off) = put(w, turn, Kind::Entry, group, index, &payload)?;
                let len = record::encoded_len(payload.len()) as u32;
                turn.changes.push(Change::Entry { group, index, seq, off: off as u32, len });
            }
        }
        Op::Vote { group, vote } => {
            put(w, turn, Kind::Vote, group, 0, &vote)?;
            turn.changes.push(Change::Vote { group, vote });
        }
        Op::Committed { group, committed } => {
            put(w, turn, Kind::Committed, group, 0, &committed)?;
            turn.changes.push(Change::Committed { group, committed });
        }
        Op::Truncate { group, from } => {
            put(w, turn, Kind::Truncate, group, from, &[])?;
            turn.changes.push(Change::Truncate { group, from });
        }
        Op::Purge { group, first, purged } => {
            put(w, turn, Kind::Purge, group, first, purged.as_deref().unwrap_or_default())?;
            turn.changes.push(Change::Purge { group, first, purged });
            turn.purged = true;
        }
        Op::Sync => {}
    }
    Ok(())
}

/// Rolls to a new segment if `len` more bytes do not fit in the active one (a record larger than
/// a whole segment gets a segment of its own).
fn make_room(shared: &Shared, w: &mut WriterState, turn: &mut Turn, len: usize) -> Result<(), String> {
    let end = w.offset + turn.buf.len() as u64;
    if end == 0 || end + len as u64 <= w.segment_bytes {
        return Ok(());
    }
    flush(shared, w, turn)?;
    let mut view = shared.view.write().unwrap_or_else(|e| e.into_inner());
    segment::seal(&w.file, w.seq, w.offset, w.epoch, &mut view.groups)
        .map_err(|e| format!("sealing segment {}: {e}", w.seq))?;
    let seq = w.seq + 1;
    let file = Arc::new(
        segment::create(&w.dir, seq, w.segment_bytes).map_err(|e| format!("creating segment {seq}: {e}"))?,
    );
    view.files.insert(seq, file.clone());
    drop(view);
    tracing::debug!(sealed = w.seq, next = seq, "segment log rolled");
    (w.seq, w.file, w.offset) = (seq, file, 0);
    Ok(())
}

/// Writes the turn's buffer and applies its changes to the shared view (entries become readable).
fn flush(shared: &Shared, w: &mut WriterState, turn: &mut Turn) -> Result<(), String> {
    if !turn.buf.is_empty() {
        w.file.write_all_at(&turn.buf, w.offset).map_err(|e| format!("writing segment {}: {e}", w.seq))?;
        w.offset += turn.buf.len() as u64;
        turn.buf.clear();
    }
    if turn.changes.is_empty() {
        return Ok(());
    }
    let mut view = shared.view.write().unwrap_or_else(|e| e.into_inner());
    for c in turn.changes.drain(..) {
        match c {
            Change::Entry { group, index, seq, off, len } => {
                view.groups.group(group).append(index, seq, off, len)?
            }
            Change::Truncate { group, from } => view.groups.group(group).truncate(from),
            Change::Purge { group, first, purged } => {
                let g = view.groups.group(group);
                g.purge(first);
                if purged.is_some() {
                    g.values.purged = purged;
                }
            }
            Change::Vote { group, vote } => view.groups.group(group).values.vote = Some(vote),
            Change::Committed { group, committed } => {
                view.groups.group(group).values.committed = Some(committed)
            }
        }
    }
    Ok(())
}

/// Deletes sealed segments no group needs any more, except the newest sealed one (its trailer
/// holds every group's values as of its seal). Only after the purge records are durable.
fn delete_unreferenced(shared: &Shared, w: &WriterState) {
    let mut view = shared.view.write().unwrap_or_else(|e| e.into_inner());
    let newest_sealed = view.files.keys().rev().find(|&&s| s != w.seq).copied();
    let gone: Vec<u64> = view
        .files
        .keys()
        .copied()
        .filter(|&s| s != w.seq && Some(s) != newest_sealed && !view.groups.references(s))
        .collect();
    for s in &gone {
        view.files.remove(s);
    }
    drop(view);
    for s in &gone {
        let p = segment::path(&w.dir, *s);
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::error!(path = %p.display(), error = %e, "cannot delete a purged segment");
        }
    }
    if !gone.is_empty() {
        tracing::debug!(segments = ?gone, "deleted purged segments");
        if let Err(e) = segment::sync_dir(&w.dir) {
            tracing::warn!(dir = %w.dir.display(), error = %e, "cannot sync the segment directory after deleting");
        }
    }
}
