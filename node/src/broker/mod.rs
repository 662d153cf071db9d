//! The broker groups hosted by this node: for each, its Raft group, its data, its write batcher
//! and its offset committer.

pub mod acks;
pub mod batcher;
pub mod damage;
pub mod filter;
pub mod flow;
pub mod lag;
pub mod location;
pub mod locks;
pub mod moves;
pub mod names;
pub mod offsets;
pub mod pop;
pub mod props;
pub mod read;
pub mod retention;
pub mod send;
pub mod service;
pub mod start;
pub mod timers;
pub mod traffic;
pub mod txn;
pub mod txn_check;

use std::collections::BTreeMap;
use std::sync::Arc;

use raftmq_raft::Group;
use raftmq_raft::RaftHost;
use raftmq_storage::GroupId;
use raftmq_storage::broker::SharedBroker;

use self::acks::AckBatcher;
use self::batcher::Batcher;
use self::batcher::BatcherOptions;
use self::offsets::OffsetCommitter;

/// A turn lock per (consumer group, topic).
type PopLocks = std::collections::HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// One broker group on this node.
pub struct BrokerGroup {
    /// The Raft group.
    pub group: Group,
    /// Its state machine's data.
    pub data: SharedBroker,
    /// Its write path (used when this node leads).
    pub batcher: Batcher,
    /// Its offset commits (used when this node leads).
    pub offsets: OffsetCommitter,
    /// Its acks (used when this node leads).
    pub acks: AckBatcher,
    /// Receives of one (consumer group, topic) take turns on these.
    pop_locks: std::sync::Mutex<PopLocks>,
    /// Woken after acks and changes of invisible time (an orderly queue may be free again).
    pop_changed: tokio::sync::Notify,
    /// This node's client address, the store host of what it appends.
    store_host: String,
    /// Messages and bytes stored and handed out through this node, per queue.
    pub traffic: traffic::Traffic,
    /// A read here found this group's stored copy corrupt (see [`damage`]).
    damaged: std::sync::atomic::AtomicBool,
}

/// Every broker group on this node, by id.
#[derive(Clone, Default)]
pub struct Brokers {
    groups: Arc<BTreeMap<GroupId, Arc<BrokerGroup>>>,
}

impl Brokers {
    /// Starts broker groups `1..=count` on `host`.
    pub async fn start(
        host: &RaftHost,
        count: u32,
        store_host: &str,
        opts: &BatcherOptions,
        flow: &Arc<flow::Flow>,
        tail_cache_bytes: usize,
    ) -> Result<Brokers, raftmq_raft::RaftError> {
        let mut groups = BTreeMap::new();
        for n in 1..=count {
            let id = GroupId::broker(n);
            let (group, data) = host.start_broker(id, tail_cache_bytes).await?;
            let batcher = Batcher::start(group.clone(), store_host.to_string(), opts.clone(), flow.clone());
            let offsets = OffsetCommitter::start(group.clone());
            let acks = AckBatcher::start(group.clone());
            groups.insert(
                id,
                Arc::new(BrokerGroup {
                    group,
                    data,
                    batcher,
                    offsets,
                    acks,
                    pop_locks: Default::default(),
                    pop_changed: tokio::sync::Notify::new(),
                    store_host: store_host.to_string(),
                    traffic: Default::default(),
                    damaged: Default::default(),
                }),
            );
        }
        Ok(Brokers { groups: Arc::new(groups) })
    }

    /// Broker group `id`, if hosted here.
    pub fn get(&self, id: GroupId) -> Option<&Arc<BrokerGroup>> {
        self.groups.get(&id)
    }

    /// Every broker group hosted here.
    pub fn all(&self) -> impl Iterator<Item = &Arc<BrokerGroup>> {
        self.groups.values()
    }
}
