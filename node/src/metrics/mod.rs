//! Prometheus metrics of a node, served as `GET /metrics` on its client port (plain HTTP/1.1
//! beside the gRPC services). Every node reports its own view of each Raft group (role, term,
//! indexes); per-queue and per-consumer-group figures come from the group's leader only, so
//! summing over nodes counts each once.

pub mod exposition;
pub mod requests;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use raftmq_storage::Store;

use self::exposition::Exposition;
use self::requests::RequestCounts;
use crate::broker::Brokers;
use crate::broker::flow::Flow;
use crate::broker::traffic::QueueTraffic;
use crate::grpc::context::ServiceStats;
use crate::nameserver::NameServer;

/// RocksDB properties exported (summed over column families).
const ROCKSDB_PROPERTIES: [(&str, &str); 4] = [
    ("rocksdb.cur-size-all-mem-tables", "raftmq_rocksdb_memtable_bytes"),
    ("rocksdb.estimate-live-data-size", "raftmq_rocksdb_live_data_bytes"),
    ("rocksdb.total-sst-files-size", "raftmq_rocksdb_sst_bytes"),
    ("rocksdb.estimate-pending-compaction-bytes", "raftmq_rocksdb_pending_compaction_bytes"),
];

/// One counter of a queue's traffic.
type TrafficField = fn(&QueueTraffic) -> u64;

/// What the metrics page reads.
#[derive(Clone)]
pub struct Metrics {
    /// This node.
    pub node_id: u64,
    /// The NameServer group.
    pub ns: NameServer,
    /// The broker groups.
    pub brokers: Brokers,
    /// The node's store.
    pub store: Arc<Store>,
    /// Flow control.
    pub flow: Arc<Flow>,
    /// The MessagingService's counters.
    pub service: Arc<ServiceStats>,
    /// The Remoting front end (its request counts).
    pub remoting: Arc<crate::remoting::Remoting>,
    /// gRPC requests served, by method.
    pub grpc_requests: Arc<RequestCounts<String>>,
}

impl Metrics {
    /// The page, built off the async workers (it reads RocksDB properties).
    pub async fn page(self) -> String {
        tokio::task::spawn_blocking(move || self.render()).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "metrics page failed");
            String::new()
        })
    }

    /// The page.
    pub fn render(&self) -> String {
        let node = self.node_id.to_string();
        let mut e = Exposition::default();
        self.raft(&mut e, &node);
        self.queues(&mut e);
        self.traffic(&mut e, &node);
        self.flow(&mut e, &node);
        e.family(
            "raftmq_replica_damaged",
            "gauge",
            "1 when a read on this node found the group's stored copy corrupt (it no longer leads the group).",
        );
        for b in self.brokers.all() {
            e.sample(
                "raftmq_replica_damaged",
                &[("node", &node), ("group", &b.group.id().name())],
                u8::from(b.is_damaged()),
            );
        }
        e.family("raftmq_send_seconds", "histogram", "Time to answer a SendMessage, seconds.");
        e.histogram("raftmq_send_seconds", &[("node", &node)], &self.service.send_latency.snapshot());
        e.family(
            "raftmq_fsync_seconds",
            "histogram",
            "Time of one fdatasync of the segment log (the Raft logs of every group), seconds.",
        );
        e.histogram(
            "raftmq_fsync_seconds",
            &[("node", &node)],
            &self.store.writer_stats().sync_latency.snapshot(),
        );
        e.family(
            "raftmq_requests_total",
            "counter",
            "Requests served, by protocol and request code (Remoting) or method (gRPC).",
        );
        let (codes, other) = self.remoting.request_counts();
        let codes = codes.into_iter().map(|(c, n)| (c.to_string(), n));
        let (methods, other_methods) = self.grpc_requests.snapshot();
        for (protocol, counts, other) in [
            ("remoting", codes.collect::<Vec<_>>(), other),
            ("grpc", methods.into_iter().collect(), other_methods),
        ] {
            let other = (other > 0).then(|| (requests::OTHER.to_string(), other));
            for (code, n) in counts.into_iter().chain(other) {
                e.sample(
                    "raftmq_requests_total",
                    &[("node", &node), ("protocol", protocol), ("code", &code)],
                    n,
                );
            }
        }
        for (property, name) in ROCKSDB_PROPERTIES {
            if let Some(v) = self.store.property(property) {
                e.family(name, "gauge", &format!("RocksDB {property}, bytes."));
                e.sample(name, &[("node", &node)], v);
            }
        }
        e.finish()
    }

    fn raft(&self, e: &mut Exposition, node: &str) {
        let mut groups = vec![self.ns.group().status()];
        groups.extend(self.brokers.all().map(|b| b.group.status()));
        e.family("raftmq_raft_term", "gauge", "Current Raft term of the group on this node.");
        for s in &groups {
            e.sample("raftmq_raft_term", &[("node", node), ("group", &s.group.name())], s.term);
        }
        e.family("raftmq_raft_leader", "gauge", "1 when this node leads the group.");
        for s in &groups {
            e.sample(
                "raftmq_raft_leader",
                &[("node", node), ("group", &s.group.name())],
                u8::from(s.role == "leader"),
            );
        }
        e.family("raftmq_raft_role", "gauge", "The group's role on this node (label role), always 1.");
        for s in &groups {
            e.sample("raftmq_raft_role", &[("node", node), ("group", &s.group.name()), ("role", &s.role)], 1);
        }
        for (name, help, get) in [
            (
                "raftmq_raft_last_log_index",
                "Index of the last entry in this node's log.",
                (|s| s.last_log_index) as fn(&raftmq_raft::GroupStatus) -> Option<u64>,
            ),
            ("raftmq_raft_commit_index", "Highest index this node knows committed.", |s| s.committed),
            ("raftmq_raft_applied_index", "Highest index applied to this node's state machine.", |s| {
                s.applied
            }),
        ] {
            e.family(name, "gauge", help);
            for s in &groups {
                e.sample(name, &[("node", node), ("group", &s.group.name())], get(s).unwrap_or(0));
            }
        }
        e.family("raftmq_raft_apply_lag", "gauge", "Committed entries not yet applied on this node.");
        for s in &groups {
            let lag = s.committed.unwrap_or(0).saturating_sub(s.applied.unwrap_or(0));
            e.sample("raftmq_raft_apply_lag", &[("node", node), ("group", &s.group.name())], lag);
        }
    }

    /// Per queue and per consumer group, from the groups this node leads.
    fn queues(&self, e: &mut Exposition) {
        let mut messages = Vec::new();
        let mut lags = Vec::new();
        for b in self.brokers.all().filter(|b| b.group.is_leader()) {
            let broker = b.group.id().name();
            b.data.read(|s| {
                let names = s.topic_names();
                for ((tid, queue), q) in &s.queues {
                    let Some(topic) = names.get(tid) else { continue };
                    messages.push((broker.clone(), topic.to_string(), *queue, q.next));
                }
            });
            lags.extend(b.lags(None));
        }
        messages.sort();
        e.family(
            "raftmq_queue_messages_total",
            "counter",
            "Messages ever stored in the queue (its next offset).",
        );
        for (broker, topic, queue, n) in &messages {
            let q = queue.to_string();
            e.sample(
                "raftmq_queue_messages_total",
                &[("broker", broker), ("topic", topic), ("queue", &q)],
                n,
            );
        }
        e.family(
            "raftmq_consumer_lag",
            "gauge",
            "Messages of the queue the consumer group has not consumed yet.",
        );
        for l in &lags {
            let q = l.queue.to_string();
            e.sample(
                "raftmq_consumer_lag",
                &[("consumer_group", &l.group), ("topic", &l.topic), ("queue", &q)],
                l.lag(),
            );
        }
    }

    /// Messages and bytes stored and handed out through this node, per queue.
    fn traffic(&self, e: &mut Exposition, node: &str) {
        let mut rows = Vec::new();
        for b in self.brokers.all() {
            let broker = b.group.id().name();
            rows.extend(b.traffic.snapshot().into_iter().map(|(k, t)| (broker.clone(), k, t)));
        }
        let families: [(&str, &str, TrafficField); 4] = [
            (
                "raftmq_queue_put_messages_total",
                "Messages this node stored in the queue as its leader.",
                |t| t.put_messages,
            ),
            (
                "raftmq_queue_put_bytes_total",
                "Body bytes this node stored in the queue as its leader.",
                |t| t.put_bytes,
            ),
            (
                "raftmq_queue_get_messages_total",
                "Messages of the queue this node handed out to consumers.",
                |t| t.get_messages,
            ),
            (
                "raftmq_queue_get_bytes_total",
                "Body bytes of the queue this node handed out to consumers.",
                |t| t.get_bytes,
            ),
        ];
        for (name, help, value) in families {
            e.family(name, "counter", help);
            for (broker, (topic, queue), t) in &rows {
                let q = queue.to_string();
                e.sample(
                    name,
                    &[("node", node), ("broker", broker), ("topic", topic), ("queue", &q)],
                    value(t),
                );
            }
        }
    }

    fn flow(&self, e: &mut Exposition, node: &str) {
        e.family("raftmq_flow_rejected_total", "counter", "Sends refused with TOO_MANY_REQUESTS, by reason.");
        for b in self.brokers.all() {
            let g = b.group.id().name();
            let n = b.batcher.stats().rejected.load(Ordering::Relaxed);
            e.sample(
                "raftmq_flow_rejected_total",
                &[("node", node), ("group", &g), ("reason", "backlog")],
                n,
            );
        }
        let n = self.flow.rejected_memory.load(Ordering::Relaxed);
        e.sample("raftmq_flow_rejected_total", &[("node", node), ("group", ""), ("reason", "memory")], n);
        e.family(
            "raftmq_flow_backlog_bytes",
            "gauge",
            "Bytes of sends accepted and not yet acknowledged, per broker group.",
        );
        for b in self.brokers.all() {
            e.sample(
                "raftmq_flow_backlog_bytes",
                &[("node", node), ("group", &b.group.id().name())],
                b.batcher.backlog_bytes(),
            );
        }
        e.family(
            "raftmq_flow_backlog_limit_bytes",
            "gauge",
            "The backlog bound per broker group ([broker] inflight_mib_max).",
        );
        for b in self.brokers.all() {
            e.sample(
                "raftmq_flow_backlog_limit_bytes",
                &[("node", node), ("group", &b.group.id().name())],
                b.batcher.backlog_max_bytes(),
            );
        }
        e.family("raftmq_memory_resident_bytes", "gauge", "Resident memory of the node process.");
        e.sample(
            "raftmq_memory_resident_bytes",
            &[("node", node)],
            self.flow.rss_bytes.load(Ordering::Relaxed),
        );
        e.family(
            "raftmq_memory_budget_bytes",
            "gauge",
            "The node's memory budget ([broker] memory_budget_mib; 0: none).",
        );
        e.sample("raftmq_memory_budget_bytes", &[("node", node)], self.flow.budget_bytes);
    }
}
