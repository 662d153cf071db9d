//! Snapshot files: a group's state-machine records (and, for broker groups, the retained log
//! entries) at one applied log id, as one checksummed file.
//!
//! Every state machine keeps its applied log id and membership in the record [`APPLIED_KEY`] and
//! writes it in the same batch as its data, so a dump of the group's key range taken from one
//! RocksDB snapshot is consistent by construction — no lock against apply is needed.
//!
//! Layout: magic, group id, [`SnapshotMeta`], then records `kind, key, value` (kind 1: a
//! state-machine record, 2: a log entry), a 0 kind, and a CRC32 of everything before it.

use std::fs::File;
use std::io;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Read;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::IteratorMode;
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;

use crate::codec::Reader;
use crate::codec::Writer;
use crate::error::DecodeError;
use crate::error::Result;
use crate::error::StorageError;
use crate::keys;
use crate::raft_codec;
use crate::snapshot_log::LogInstall;
use crate::store::CF_SM;
use crate::store::Store;
use crate::types::GroupId;
use crate::types::LogId;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;

/// Key suffix (under the group prefix) of every state machine's applied log id and membership.
pub const APPLIED_KEY: &[u8] = b"\x00applied";

const MAGIC: &[u8; 8] = b"RMQSNAP1";
const KIND_END: u8 = 0;
const KIND_SM: u8 = 1;
const KIND_LOG: u8 = 2;
/// Bytes per write batch when installing.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// A snapshot on disk: the `SnapshotData` of every raftmq group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Where the file is.
    pub path: PathBuf,
    /// Its size, bytes.
    pub len: u64,
}

/// File name of the snapshot at `applied`; names sort in log order.
pub fn file_name(applied: Option<&LogId>) -> String {
    match applied {
        Some(l) => format!("snap-{:020}-{:020}.snap", l.index, l.leader_id.term),
        None => format!("snap-{:020}-empty.snap", 0),
    }
}

/// Encodes the applied record.
pub fn encode_applied(applied: Option<&LogId>, membership: &StoredMembership) -> Vec<u8> {
    let mut w = Writer::with_capacity(128);
    raft_codec::put_opt_log_id(&mut w, applied);
    raft_codec::put_stored_membership(&mut w, membership);
    w.into_vec()
}

/// Decodes the applied record.
pub fn decode_applied(b: &[u8]) -> Result<(Option<LogId>, StoredMembership), DecodeError> {
    let mut r = Reader::new(b, "applied record");
    let applied = raft_codec::get_opt_log_id(&mut r)?;
    let m = raft_codec::get_stored_membership(&mut r)?;
    r.finish()?;
    Ok((applied, m))
}

/// The index of a group's applied log id in the live database, if it applied anything.
pub fn applied_index(store: &Store, group: GroupId) -> Result<Option<u64>> {
    Ok(read_applied(store, group)?.0.map(|l| l.index))
}

/// Reads a group's applied record from the live database.
pub fn read_applied(store: &Store, group: GroupId) -> Result<(Option<LogId>, StoredMembership)> {
    match store.db().get_pinned_cf(store.cf(CF_SM)?, keys::group_key(group, APPLIED_KEY))? {
        Some(b) => Ok(decode_applied(&b)?),
        None => Ok((None, StoredMembership::default())),
    }
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_record(w: &mut impl Write, kind: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
    w.write_all(&[kind])?;
    w.write_all(&(key.len() as u32).to_be_bytes())?;
    w.write_all(key)?;
    w.write_all(&(value.len() as u32).to_be_bytes())?;
    w.write_all(value)
}

/// Dumps `group`'s state-machine records, plus its log entries from `log_from` on (broker
/// groups; `None` for none), into a new file in `dir`. Blocking.
pub fn build(
    store: &Arc<Store>,
    group: GroupId,
    dir: &Path,
    log_from: Option<u64>,
) -> Result<(SnapshotMeta, SnapshotFile)> {
    std::fs::create_dir_all(dir)?;
    let db = store.db();
    let view = db.snapshot();
    let (applied, membership) = match view.get_cf(store.cf(CF_SM)?, keys::group_key(group, APPLIED_KEY))? {
        Some(b) => decode_applied(&b)?,
        None => (None, StoredMembership::default()),
    };
    let meta = SnapshotMeta { last_log_id: applied, last_membership: membership };
    let name = file_name(applied.as_ref());
    let tmp = dir.join(format!("{name}.tmp"));
    let file = File::create(&tmp)?;
    let mut w = CrcWriter { inner: BufWriter::with_capacity(1 << 20, file), crc: crc32fast::Hasher::new() };
    w.write_all(MAGIC)?;
    w.write_all(&group.0.to_be_bytes())?;
    let mut mw = Writer::default();
    raft_codec::put_snapshot_meta(&mut mw, &meta);
    w.write_all(&(mw.len() as u32).to_be_bytes())?;
    w.write_all(mw.as_slice())?;

    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(keys::group_end(group));
    let start = keys::group_start(group);
    for kv in
        view.iterator_cf_opt(store.cf(CF_SM)?, ro, IteratorMode::From(&start, rocksdb::Direction::Forward))
    {
        let (k, v) = kv?;
        write_record(&mut w, KIND_SM, &k[4..], &v)?;
    }
    if let (Some(from), Some(last)) = (log_from, applied) {
        // Entries up to the applied id are durable in the log (a state machine writes nothing
        // before its entries are), and committed, so they never change; a purge meanwhile makes
        // one unreadable and fails this build, which openraft retries.
        for i in from..=last.index {
            let b = store.seglog().read(group, i)?.ok_or_else(|| StorageError::Corruption {
                what: "snapshot build",
                reason: format!("group {group} entry {i} is no longer in the log"),
            })?;
            write_record(&mut w, KIND_LOG, &i.to_be_bytes(), &b)?;
        }
    }
    w.write_all(&[KIND_END])?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner.into_inner().map_err(|e| e.into_error())?;
    inner.write_all(&crc.to_be_bytes())?;
    inner.sync_all()?;
    drop(inner);
    let path = dir.join(&name);
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    let len = std::fs::metadata(&path)?.len();
    tracing::info!(%group, path = %path.display(), bytes = len, applied = ?meta.last_log_id, "built snapshot");
    Ok((meta, SnapshotFile { path, len }))
}

/// One record of a snapshot file.
enum Record {
    Sm(Vec<u8>, Vec<u8>),
    Log(Vec<u8>, Vec<u8>),
}

/// Reads a snapshot file front to back, checking its magic, group and checksum.
struct FileReader {
    r: BufReader<File>,
    crc: crc32fast::Hasher,
}

impl FileReader {
    fn open(path: &Path, group: GroupId) -> Result<(FileReader, SnapshotMeta)> {
        let mut fr = FileReader {
            r: BufReader::with_capacity(1 << 20, File::open(path)?),
            crc: crc32fast::Hasher::new(),
        };
        let magic = fr.read_n(8)?;
        if magic != MAGIC {
            return Err(DecodeError::new("snapshot file", "bad magic").into());
        }
        let g = fr.read_u32()?;
        if g != group.0 {
            return Err(
                DecodeError::new("snapshot file", format!("belongs to group {g}, not {}", group.0)).into()
            );
        }
        let meta_len = fr.read_u32()? as usize;
        let meta_bytes = fr.read_n(meta_len)?;
        let meta = raft_codec::get_snapshot_meta(&mut Reader::new(&meta_bytes, "snapshot meta"))?;
        Ok((fr, meta))
    }

    fn read_n(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.r.read_exact(&mut b)?;
        self.crc.update(&b);
        Ok(b)
    }

    fn read_u32(&mut self) -> Result<u32> {
        let b = self.read_n(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next record, or `None` after the end marker (with the checksum verified).
    fn next(&mut self) -> Result<Option<Record>> {
        let kind = self.read_n(1)?[0];
        if kind == KIND_END {
            let want = self.crc.clone().finalize();
            let mut b = [0u8; 4];
            self.r.read_exact(&mut b)?;
            if u32::from_be_bytes(b) != want {
                return Err(DecodeError::new("snapshot file", "checksum mismatch").into());
            }
            return Ok(None);
        }
        let klen = self.read_u32()? as usize;
        let k = self.read_n(klen)?;
        let vlen = self.read_u32()? as usize;
        let v = self.read_n(vlen)?;
        match kind {
            KIND_SM => Ok(Some(Record::Sm(k, v))),
            KIND_LOG => Ok(Some(Record::Log(k, v))),
            k => Err(DecodeError::new("snapshot file", format!("unknown record kind {k}")).into()),
        }
    }
}

/// Reads the metadata at the head of a snapshot file. Blocking.
pub fn read_meta(path: &Path, group: GroupId) -> Result<SnapshotMeta> {
    Ok(FileReader::open(path, group)?.1)
}

/// Checks a whole snapshot file (magic, group, every record, checksum). Blocking.
pub fn verify(path: &Path, group: GroupId) -> Result<SnapshotMeta> {
    let (mut fr, meta) = FileReader::open(path, group)?;
    while fr.next()?.is_some() {}
    Ok(meta)
}

/// Replaces `group`'s state-machine records (and all its log entries up to the snapshot, when the
/// file carries log entries) with the file's contents. The applied record comes last, so a crash
/// midway leaves a group that knows it applied nothing and installs the snapshot again. Blocking;
/// the file must have passed [`verify`].
pub fn install(store: &Arc<Store>, group: GroupId, path: &Path) -> Result<SnapshotMeta> {
    let (mut fr, meta) = FileReader::open(path, group)?;
    let db = store.db();
    let sm_cf = store.cf(CF_SM)?;
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(sm_cf, keys::group_start(group), keys::group_end(group));
    let mut log: Option<LogInstall> = None;
    let mut applied: Option<Vec<u8>> = None;
    while let Some(rec) = fr.next()? {
        match rec {
            Record::Sm(k, v) if k == APPLIED_KEY => applied = Some(v),
            Record::Sm(k, v) => batch.put_cf(sm_cf, keys::group_key(group, &k), v),
            Record::Log(k, v) => {
                let index = k
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| DecodeError::new("snapshot file", "log record key is not an index"))?;
                let l = match log.as_mut() {
                    Some(l) => l,
                    None => log.insert(LogInstall::start(store, group, index, meta.last_log_id)?),
                };
                l.push(index, Bytes::from(v))?;
            }
        }
        if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    // The log first, durably: the state written next says it applied those entries.
    if let Some(l) = log {
        l.finish()?;
    }
    if let Some(v) = applied {
        batch.put_cf(sm_cf, keys::group_key(group, APPLIED_KEY), v);
    }
    db.write(batch)?;
    Ok(meta)
}

/// The newest snapshot file in `dir`, if any. Blocking.
pub fn latest(dir: &Path, group: GroupId) -> Result<Option<(SnapshotMeta, SnapshotFile)>> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "snap"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    let Some(path) = names.pop() else { return Ok(None) };
    let meta = read_meta(&path, group)?;
    let len = std::fs::metadata(&path)?.len();
    Ok(Some((meta, SnapshotFile { path, len })))
}

/// Deletes every snapshot file in `dir` except `keep` and the newest older one (which a follower
/// may still be receiving). Blocking; failures are logged, not returned.
pub fn prune(dir: &Path, keep: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut older: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.as_path() != keep && p.extension().is_some_and(|x| x == "snap" || x == "tmp"))
        .collect();
    older.sort();
    older.pop();
    for p in older {
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove old snapshot");
        }
    }
}

/// A fresh path in `dir` for a snapshot being received from a leader.
pub fn incoming_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("incoming-{seq}.part"))
}

/// Installs a snapshot file `received` for `group` (off the runtime): keeps it as the group's
/// current snapshot first (so a crash midway finds it and installs it again), writes its records
/// and entries, reads the state back with `load`, and drops older files. Fails if the file is
/// not at the log id openraft is installing (`meta`).
pub async fn install_received<S: Send + 'static>(
    store: Arc<Store>,
    group: GroupId,
    meta: &SnapshotMeta,
    received: SnapshotFile,
    load: fn(&Store, GroupId) -> Result<S>,
) -> io::Result<S> {
    let (installed, state) = tokio::task::spawn_blocking(move || {
        let dir = store.snapshot_dir(group);
        let verified = verify(&received.path, group)?;
        std::fs::create_dir_all(&dir)?;
        let kept = dir.join(file_name(verified.last_log_id.as_ref()));
        if received.path != kept {
            std::fs::rename(&received.path, &kept)?;
        }
        let installed = install(&store, group, &kept)?;
        let state = load(&store, group)?;
        prune(&dir, &kept);
        Ok::<_, crate::error::StorageError>((installed, state))
    })
    .await
    .map_err(io::Error::other)??;
    if installed.last_log_id != meta.last_log_id {
        return Err(io::Error::other(format!(
            "snapshot file is at {:?} but openraft installs {:?}",
            installed.last_log_id, meta.last_log_id
        )));
    }
    Ok(state)
}

/// The newest snapshot of `group` as openraft wants it (read off the runtime).
pub async fn current(
    store: &Store,
    group: GroupId,
) -> io::Result<Option<openraft::type_config::alias::SnapshotOf<crate::types::TypeConfig, SnapshotFile>>> {
    let dir = store.snapshot_dir(group);
    let latest =
        tokio::task::spawn_blocking(move || latest(&dir, group)).await.map_err(io::Error::other)??;
    Ok(latest.map(|(meta, file)| openraft::storage::Snapshot { meta, snapshot: file }))
}
