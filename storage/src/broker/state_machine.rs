//! A broker group's [`RaftStateMachine`]: its Raft log is the CommitLog; apply builds the consume
//! queues and indexes and keeps committed consumer offsets, all in one write batch with the
//! applied log id.

use std::io;
use std::sync::Arc;
use std::sync::RwLock;

use futures::Stream;
use futures::StreamExt;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use rocksdb::ColumnFamily;
use rocksdb::IteratorMode;
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;
use tokio::sync::watch;

use super::keys;
use super::notify::QueueNotifier;
use super::state::BrokerState;
use super::state::QueueState;
use super::state::Sink;
use crate::command::Command;
use crate::command::Response;
use crate::error::DecodeError;
use crate::error::Result;
use crate::error::StorageError;
use crate::keys::group_key;
use crate::log_store::LogStore;
use crate::snapshot;
use crate::snapshot::APPLIED_KEY;
use crate::snapshot::SnapshotFile;
use crate::store::CF_SM;
use crate::store::Store;
use crate::types::GroupId;
use crate::types::LogId;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::TypeConfig;

struct BatchSink<'a> {
    batch: &'a mut WriteBatch,
    cf: &'a ColumnFamily,
}

impl Sink for BatchSink<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.batch.put_cf(self.cf, key, value);
    }
    fn delete(&mut self, key: &[u8]) {
        self.batch.delete_cf(self.cf, key);
    }
    fn delete_range(&mut self, from: &[u8], to: &[u8]) {
        self.batch.delete_range_cf(self.cf, from, to);
    }
}

/// Read access to a broker group's data, shared with the node's services.
#[derive(Clone, Debug)]
pub struct SharedBroker {
    group: GroupId,
    store: Arc<Store>,
    log: LogStore,
    state: Arc<RwLock<BrokerState>>,
    notifier: Arc<QueueNotifier>,
    applied: watch::Sender<u64>,
}

impl SharedBroker {
    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The node's store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The group's log (for reading message bytes out of its memory tail).
    pub fn log(&self) -> &LogStore {
        &self.log
    }

    /// Runs `f` on the in-memory state (topic ids, queue offsets, consumer offsets).
    pub fn read<R>(&self, f: impl FnOnce(&BrokerState) -> R) -> R {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The readable-end watches of the group's queues.
    pub fn notifier(&self) -> &Arc<QueueNotifier> {
        &self.notifier
    }

    /// Index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// A receiver that changes whenever entries are applied; its value is the applied index.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The retention floor: log entries below it hold no retained message.
    pub fn floor(&self) -> u64 {
        self.read(|s| s.floor)
    }
}

/// State machine of one broker group.
pub struct BrokerSm {
    shared: SharedBroker,
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl std::fmt::Debug for BrokerSm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSm").field("group", &self.shared.group).field("applied", &self.applied).finish()
    }
}

fn scan(
    store: &Store,
    group: GroupId,
    prefix: u8,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let start = group_key(group, &[prefix]);
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(group_key(group, &[prefix + 1]));
    for kv in store.db().iterator_cf_opt(
        store.cf(CF_SM)?,
        ro,
        IteratorMode::From(&start, rocksdb::Direction::Forward),
    ) {
        let (k, v) = kv?;
        f(&k[5..], &v)?;
    }
    Ok(())
}

fn u32_of(b: &[u8], what: &'static str) -> Result<u32> {
    Ok(u32::from_be_bytes(b.try_into().map_err(|_| DecodeError::new(what, "not a u32"))?))
}

/// The answer to a command that appends copies (or refuses, changing nothing).
fn appended(r: std::result::Result<Vec<u64>, String>) -> Response {
    match r {
        Ok(offsets) => Response::Appended(offsets),
        Err(reason) => Response::Rejected(reason),
    }
}

/// Loads the in-memory state of `group` from its records. Blocking.
fn load_state(store: &Store, group: GroupId) -> Result<BrokerState> {
    let mut s = BrokerState::new(group);
    scan(store, group, keys::TOPIC, |k, v| {
        let name = std::str::from_utf8(k).map_err(|e| DecodeError::new("topic record", e.to_string()))?;
        s.topics.insert(name.to_string(), u32_of(v, "topic record")?);
        Ok(())
    })?;
    scan(store, group, keys::QUEUE, |k, v| {
        if k.len() != 8 {
            return Err(DecodeError::new("queue record", "bad key").into());
        }
        s.queues.insert(
            (u32_of(&k[..4], "queue record")?, u32_of(&k[4..], "queue record")?),
            QueueState::decode(v)?,
        );
        Ok(())
    })?;
    if let Some(v) = store.db().get_pinned_cf(store.cf(CF_SM)?, keys::floor(group))? {
        s.floor = u64::from_be_bytes(
            v.as_ref().try_into().map_err(|_| DecodeError::new("floor record", "not a u64"))?,
        );
    }
    scan(store, group, keys::POP_CURSOR, |k, v| {
        let (name, tid, queue, _) = parse_group_key(k, 0)?;
        let cursor =
            u64::from_be_bytes(v.try_into().map_err(|_| DecodeError::new("pop cursor", "not a u64"))?);
        s.pops.queues.entry((name, tid, queue)).or_default().cursor = cursor;
        Ok(())
    })?;
    scan(store, group, keys::POP_INFLIGHT, |k, v| {
        let (name, tid, queue, rest) = parse_group_key(k, 8)?;
        let offset =
            u64::from_be_bytes(rest.try_into().map_err(|_| DecodeError::new("in-flight record", "bad key"))?);
        let f = super::pop::Inflight::decode(v)?;
        s.pops.queues.entry((name, tid, queue)).or_default().inflight.insert(offset, f);
        Ok(())
    })?;
    scan(store, group, keys::TIMER, |k, v| {
        s.timers.insert(super::timers::parse_key_suffix(k)?, super::timers::Timer::decode(v)?);
        Ok(())
    })?;
    scan(store, group, keys::LOCK, |k, v| {
        s.locks.insert(super::locks::parse_key_suffix(k)?, super::locks::Lock::decode(v)?);
        Ok(())
    })?;
    scan(store, group, keys::HALF, |k, v| {
        s.halves.insert(super::txn::parse_key_suffix(k)?, super::txn::Half::decode(v)?);
        Ok(())
    })?;
    scan(store, group, keys::CONSUMER, |k, v| {
        let (name, tid, queue, _) = parse_group_key(k, 0)?;
        let off =
            u64::from_be_bytes(v.try_into().map_err(|_| DecodeError::new("consumer offset", "not a u64"))?);
        s.consumers.insert((name, tid, queue), off);
        Ok(())
    })?;
    Ok(s)
}

/// Splits a key suffix `len(u16) group topic_id(u32) queue(u32) rest` (after its one-byte
/// prefix), checking `rest` has `rest_len` bytes.
fn parse_group_key(k: &[u8], rest_len: usize) -> Result<(String, u32, u32, &[u8])> {
    let bad = || StorageError::from(DecodeError::new("consumer record", "bad key"));
    let glen = u16::from_be_bytes(k.get(..2).and_then(|b| b.try_into().ok()).ok_or_else(bad)?) as usize;
    let name = k.get(2..2 + glen).and_then(|b| std::str::from_utf8(b).ok()).ok_or_else(bad)?;
    let rest = k.get(2 + glen..).filter(|r| r.len() == 8 + rest_len).ok_or_else(bad)?;
    Ok((
        name.to_string(),
        u32_of(&rest[..4], "consumer record")?,
        u32_of(&rest[4..8], "consumer record")?,
        &rest[8..],
    ))
}

fn publish_all(notifier: &QueueNotifier, state: &BrokerState) {
    let names = state.topic_names();
    notifier.reset(
        state
            .queues
            .iter()
            .filter_map(|((tid, q), st)| names.get(tid).map(|n| ((n.to_string(), *q), st.next))),
    );
}

impl BrokerSm {
    /// Opens the state machine of broker group `group`. Blocking.
    pub fn open(store: Arc<Store>, group: GroupId, log: LogStore) -> Result<BrokerSm> {
        let (applied, membership) = snapshot::read_applied(&store, group)?;
        log.check_applied(applied.as_ref())?;
        let state = load_state(&store, group)?;
        let notifier = Arc::new(QueueNotifier::default());
        publish_all(&notifier, &state);
        log.set_retention_floor(state.floor);
        let shared = SharedBroker {
            group,
            store,
            log,
            state: Arc::new(RwLock::new(state)),
            notifier,
            applied: watch::Sender::new(applied.map_or(0, |l| l.index)),
        };
        Ok(BrokerSm { shared, applied, membership })
    }

    /// A handle for reading the group's data.
    pub fn shared(&self) -> SharedBroker {
        self.shared.clone()
    }
}

/// Builds broker snapshots: every state-machine record plus the retained log entries, from one
/// consistent RocksDB view.
pub struct BrokerSnapshotBuilder {
    store: Arc<Store>,
    group: GroupId,
    floor: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for BrokerSnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(
        &mut self,
    ) -> io::Result<openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>> {
        let store = self.store.clone();
        let group = self.group;
        let floor = self.floor;
        let (meta, file) = tokio::task::spawn_blocking(move || {
            let dir = store.snapshot_dir(group);
            // The log is the CommitLog: a replica installing this snapshot must get every message
            // a consumer could still read, i.e. every entry from the retention floor on. (The
            // floor only rises, so one read before the view may include a few expired entries.)
            let built = snapshot::build(&store, group, &dir, Some(floor))?;
            snapshot::prune(&dir, &built.1.path);
            Ok::<_, StorageError>(built)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(openraft::storage::Snapshot { meta, snapshot: file })
    }
}

impl RaftStateMachine<TypeConfig> for BrokerSm {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = BrokerSnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.applied, self.membership.clone()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = %self.shared.group))]
    async fn apply<S>(&mut self, entries: S) -> io::Result<()>
    where
        S: Stream<Item = io::Result<openraft::storage::EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        let mut entries = entries;
        let group = self.shared.group;
        let store = self.shared.store.clone();
        let cf = store.cf(CF_SM)?;
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        let mut touched: Vec<(String, u32)> = Vec::new();
        // Only retention raises the floor; the log learns it after this apply is written.
        let mut new_floor = None;
        {
            let mut sink = BatchSink { batch: &mut batch, cf };
            while let Some(item) = entries.next().await {
                let (entry, responder) = item?;
                let log_id = entry.log_id;
                // The last entry applied in full: what a mid-apply write records as applied.
                let before = self.applied;
                self.applied = Some(log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => Response::Empty,
                    EntryPayload::Membership(m) => {
                        self.membership = StoredMembership::new(Some(log_id), m);
                        Response::Empty
                    }
                    EntryPayload::Normal(Command::Append(a)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        match st.apply_append(log_id.index, a.store_ms, &a.batch, &mut sink, &mut touched) {
                            Ok(offsets) => Response::Appended(offsets),
                            Err(e) => {
                                tracing::error!(index = log_id.index, error = %e, "append entry does not decode; skipped");
                                Response::Rejected(e.to_string())
                            }
                        }
                    }
                    EntryPayload::Normal(Command::Retain(r)) => {
                        // Planning reads the store: write what this apply has so far first,
                        // with the applied id of the entries it holds, so the store never has
                        // records ahead of its applied id (a snapshot may be built meanwhile).
                        let mut pending = std::mem::take(sink.batch);
                        pending.put_cf(
                            cf,
                            group_key(group, APPLIED_KEY),
                            snapshot::encode_applied(before.as_ref(), &self.membership),
                        );
                        if let Some(b) = before {
                            self.shared.log.wait_durable(b.index).await?;
                        }
                        store.writer().write_unsynced(pending).await?;
                        let next_index = log_id.index + 1;
                        let plan = {
                            // Apply is the only writer of the state and waits for the plan, so
                            // the planner reads it in place instead of copying it.
                            let state = self.shared.state.clone();
                            let (store2, log) = (store.clone(), self.shared.log.clone());
                            tokio::task::spawn_blocking(move || {
                                let state = state.read().unwrap_or_else(|e| e.into_inner());
                                super::reader::plan_retain(&store2, &log, &state, &r.cuts, next_index)
                            })
                            .await
                            .map_err(io::Error::other)?
                        };
                        match plan {
                            Ok(plan) => {
                                let removed: u64 = plan.expiries.iter().map(|e| e.ids.len() as u64).sum();
                                self.shared
                                    .state
                                    .write()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .apply_retain(&plan, &mut sink);
                                new_floor = Some(self.shared.floor());
                                if removed > 0 {
                                    tracing::info!(
                                        index = log_id.index,
                                        removed,
                                        floor = plan.floor,
                                        "retention removed expired messages"
                                    );
                                }
                                Response::Done
                            }
                            Err(e) => {
                                // The store cannot be read: this replica cannot apply faithfully.
                                tracing::error!(index = log_id.index, error = %e, "retention planning failed");
                                return Err(io::Error::from(e));
                            }
                        }
                    }
                    EntryPayload::Normal(Command::Pop(p)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        match st.apply_pop(&p, &mut sink) {
                            Ok(popped) => Response::Popped(popped),
                            Err(reason) => Response::Rejected(reason),
                        }
                    }
                    EntryPayload::Normal(Command::Ack(a)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        Response::Acked(st.apply_ack(&a, &mut sink))
                    }
                    EntryPayload::Normal(Command::Deliver(d)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        appended(st.apply_deliver(log_id.index, &d, &mut sink, &mut touched))
                    }
                    EntryPayload::Normal(Command::Recall(r)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        match st.apply_recall(&r, &mut sink) {
                            Ok(()) => Response::Done,
                            Err(reason) => Response::Rejected(reason),
                        }
                    }
                    EntryPayload::Normal(Command::Lock(l)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        Response::Locked(st.apply_lock(&l, &mut sink))
                    }
                    EntryPayload::Normal(Command::Txn(t)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        appended(st.apply_txn(log_id.index, &t, &mut sink, &mut touched))
                    }
                    EntryPayload::Normal(Command::Move(d)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        appended(st.apply_move(log_id.index, &d, &mut sink, &mut touched))
                    }
                    EntryPayload::Normal(Command::CommitOffsets(c)) => {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        st.apply_commit_offsets(&c.group, &c.offsets, &mut sink);
                        Response::Done
                    }
                    EntryPayload::Normal(other) => {
                        tracing::error!(index = log_id.index, command = %other, "not a broker command; skipped");
                        Response::Rejected(format!("{other} is not a broker command"))
                    }
                };
                if let Some(r) = responder {
                    replies.push((r, response));
                }
            }
        }
        batch.put_cf(
            cf,
            group_key(group, APPLIED_KEY),
            snapshot::encode_applied(self.applied.as_ref(), &self.membership),
        );
        // Rule 1: what was applied is never durable before the entries it came from.
        if let Some(a) = self.applied {
            self.shared.log.wait_durable(a.index).await?;
        }
        store.writer().write_unsynced(batch).await?;
        // Now readable: publish the new ends, then answer the proposers.
        let ends: Vec<((String, u32), u64)> = {
            let st = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
            touched
                .into_iter()
                .map(|(t, q)| {
                    let end = st.queue(&t, q).next;
                    ((t, q), end)
                })
                .collect()
        };
        for ((t, q), end) in ends {
            self.shared.notifier.publish(&t, q, end);
        }
        if let Some(floor) = new_floor {
            self.shared.log.set_retention_floor(floor);
        }
        self.shared.applied.send_replace(self.applied.map_or(0, |l| l.index));
        for (r, response) in replies {
            r.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        BrokerSnapshotBuilder {
            store: self.shared.store.clone(),
            group: self.shared.group,
            floor: self.shared.floor(),
        }
    }

    #[tracing::instrument(level = "info", skip_all, fields(group = %self.shared.group, last = ?meta.last_log_id))]
    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> io::Result<()> {
        let state = snapshot::install_received(
            self.shared.store.clone(),
            self.shared.group,
            meta,
            snapshot,
            load_state,
        )
        .await?;
        publish_all(&self.shared.notifier, &state);
        self.shared.log.set_retention_floor(state.floor);
        *self.shared.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.shared.applied.send_replace(self.applied.map_or(0, |l| l.index));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> io::Result<Option<openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>>> {
        snapshot::current(&self.shared.store, self.shared.group).await
    }
}
