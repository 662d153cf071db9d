//! The NameServer's [`RaftStateMachine`]: applies [`MetaCommand`]s to the in-memory
//! [`MetaState`] and persists the changed records with the applied log id in one write batch.

use std::io;
use std::sync::Arc;
use std::sync::RwLock;

use futures::Stream;
use futures::StreamExt;
use openraft::EntryPayload;
use openraft::RaftSnapshotBuilder;
use openraft::storage::RaftStateMachine;
use rocksdb::IteratorMode;
use rocksdb::ReadOptions;
use rocksdb::WriteBatch;
use tokio::sync::watch;

use super::model::MetaState;
use crate::command::Command;
use crate::command::Response;
use crate::error::Result;
use crate::error::StorageError;
use crate::keys;
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

/// Prefix of metadata records under the group's state-machine keys (the applied record uses 0).
const RECORD_PREFIX: u8 = 1;

/// Read access to the NameServer's current metadata, shared with the node's services.
#[derive(Clone, Debug)]
pub struct SharedMeta {
    state: Arc<RwLock<MetaState>>,
    applied: watch::Sender<u64>,
}

impl SharedMeta {
    fn new(state: MetaState) -> Self {
        Self { state: Arc::new(RwLock::new(state)), applied: watch::Sender::new(0) }
    }

    /// Runs `f` on the current state. Keep `f` short: apply waits for it.
    pub fn read<R>(&self, f: impl FnOnce(&MetaState) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// A receiver that changes whenever an entry is applied; its value is the applied index.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    fn replace(&self, s: MetaState) {
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

/// State machine of the NameServer group.
#[derive(Debug)]
pub struct NameServerSm {
    store: Arc<Store>,
    group: GroupId,
    shared: SharedMeta,
    applied: Option<LogId>,
    membership: StoredMembership,
    /// The group's log: apply waits until what it writes is durable there.
    log: LogStore,
}

fn load_state(store: &Store, group: GroupId) -> Result<MetaState> {
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(keys::group_key(group, &[RECORD_PREFIX + 1]));
    let start = keys::group_key(group, &[RECORD_PREFIX]);
    let mut kvs = Vec::new();
    for kv in store.db().iterator_cf_opt(
        store.cf(CF_SM)?,
        ro,
        IteratorMode::From(&start, rocksdb::Direction::Forward),
    ) {
        let (k, v) = kv?;
        kvs.push((k[5..].to_vec(), v.to_vec()));
    }
    Ok(MetaState::from_records(kvs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?)
}

impl NameServerSm {
    /// Opens the NameServer state of `group` from `store`, over its log. Blocking.
    pub fn open(store: Arc<Store>, group: GroupId, log: LogStore) -> Result<NameServerSm> {
        let (applied, membership) = snapshot::read_applied(&store, group)?;
        log.check_applied(applied.as_ref())?;
        let state = load_state(&store, group)?;
        let shared = SharedMeta::new(state);
        shared.applied.send_replace(applied.map_or(0, |l| l.index));
        Ok(NameServerSm { store, group, shared, applied, membership, log })
    }

    /// A handle for reading the metadata.
    pub fn shared(&self) -> SharedMeta {
        self.shared.clone()
    }
}

/// Builds NameServer snapshots from a consistent RocksDB view.
pub struct NameServerSnapshotBuilder {
    store: Arc<Store>,
    group: GroupId,
}

impl RaftSnapshotBuilder<TypeConfig> for NameServerSnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(
        &mut self,
    ) -> io::Result<openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>> {
        let store = self.store.clone();
        let group = self.group;
        let (meta, file) = tokio::task::spawn_blocking(move || {
            let dir = store.snapshot_dir(group);
            let built = snapshot::build(&store, group, &dir, None)?;
            snapshot::prune(&dir, &built.1.path);
            Ok::<_, StorageError>(built)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(openraft::storage::Snapshot { meta, snapshot: file })
    }
}

impl RaftStateMachine<TypeConfig> for NameServerSm {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = NameServerSnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.applied, self.membership.clone()))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(group = %self.group))]
    async fn apply<S>(&mut self, entries: S) -> io::Result<()>
    where
        S: Stream<Item = io::Result<openraft::storage::EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        let mut entries = entries;
        let sm_cf = self.store.cf(CF_SM)?;
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id;
            self.applied = Some(log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::Empty,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                    Response::Empty
                }
                EntryPayload::Normal(Command::Meta(cmd)) => {
                    let (r, changes) = {
                        let mut st = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
                        st.apply(&cmd)
                    };
                    for c in changes {
                        let key = keys::group_key(self.group, &[&[RECORD_PREFIX], c.key.as_slice()].concat());
                        match c.value {
                            Some(v) => batch.put_cf(sm_cf, key, v),
                            None => batch.delete_cf(sm_cf, key),
                        }
                    }
                    tracing::debug!(
                        index = log_id.index,
                        term = log_id.leader_id.term,
                        ?r,
                        "applied meta command"
                    );
                    Response::Meta(r)
                }
                EntryPayload::Normal(other) => {
                    tracing::error!(index = log_id.index, command = %other, "not a nameserver command; skipped");
                    Response::Rejected(format!("{other} is not a nameserver command"))
                }
            };
            if let Some(responder) = responder {
                replies.push((responder, response));
            }
        }
        batch.put_cf(
            sm_cf,
            keys::group_key(self.group, APPLIED_KEY),
            snapshot::encode_applied(self.applied.as_ref(), &self.membership),
        );
        // Rule 1: what was applied is never durable before the entries it came from.
        if let Some(a) = self.applied {
            self.log.wait_durable(a.index).await?;
        }
        self.store.writer().write_unsynced(batch).await?;
        self.shared.applied.send_replace(self.applied.map_or(0, |l| l.index));
        for (responder, response) in replies {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        NameServerSnapshotBuilder { store: self.store.clone(), group: self.group }
    }

    #[tracing::instrument(level = "info", skip_all, fields(group = %self.group, last = ?meta.last_log_id))]
    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> io::Result<()> {
        let state =
            snapshot::install_received(self.store.clone(), self.group, meta, snapshot, load_state).await?;
        self.shared.replace(state);
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.shared.applied.send_replace(self.applied.map_or(0, |l| l.index));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> io::Result<Option<openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>>> {
        snapshot::current(&self.store, self.group).await
    }
}
