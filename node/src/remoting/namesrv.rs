//! The NameServer codes: GET_ROUTEINFO_BY_TOPIC (105) and GET_BROKER_CLUSTER_INFO (106).
//!
//! Each broker group is one 4.x broker, named after the group (`broker-a`, ...). Its current
//! Raft leader is brokerId 0 (the master every 4.x producer writes to), the other replicas are
//! 1..n (4.9.x clients list them as slaves and heartbeat them), as in Apache's DLedger mode.
//! Every node answers from its replica of the NameServer's state.

use std::collections::BTreeMap;

use raftmq_storage::GroupId;
use raftmq_storage::nameserver::DEFAULT_QUEUE_COUNT;
use raftmq_storage::nameserver::Permission;
use raftmq_storage::nameserver::Topic;
use serde::Serialize;

use super::codec::Command;
use super::codes::response as rc;
use super::context::Remoting;
use super::header::Header;
use super::queues::broker_groups;
use super::queues::broker_queues;
use super::status;

/// The cluster name 4.x clients and tools see (Apache's default).
pub const CLUSTER: &str = "DefaultCluster";
/// The topic whose route a 4.x producer takes for a topic that does not exist yet, to send it
/// its first message (which creates the topic when auto-creation is on).
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// Permission bits.
const PERM_READ: i32 = 4;
const PERM_WRITE: i32 = 2;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueData {
    broker_name: String,
    read_queue_nums: usize,
    write_queue_nums: usize,
    perm: i32,
    topic_sys_flag: i32,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct BrokerData {
    cluster: String,
    broker_name: String,
    broker_addrs: BTreeMap<String, String>,
    enable_acting_master: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicRouteData {
    queue_datas: Vec<QueueData>,
    broker_datas: Vec<BrokerData>,
    filter_server_table: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterInfo {
    broker_addr_table: BTreeMap<String, BrokerData>,
    cluster_addr_table: BTreeMap<String, Vec<String>>,
}

fn perm(p: Permission) -> i32 {
    match p {
        Permission::Read => PERM_READ,
        Permission::Write => PERM_WRITE,
        Permission::ReadWrite => PERM_READ | PERM_WRITE,
    }
}

impl Remoting {
    /// Broker group `g` as a 4.x broker: its leader's Remoting address at id 0 (this node's
    /// when no leader is known: it forwards), the other replicas' at 1, 2, ...
    fn broker_data(&self, g: GroupId) -> BrokerData {
        let leader = self.leader(g).map(|l| l.node);
        let (name, addrs) = self.ns.read_local(|s| {
            let info = s.broker_groups.get(&g.0);
            let name = info.map_or_else(|| g.name(), |i| i.name.clone());
            let addr = |n: &u64| s.members.get(n).and_then(|m| m.remoting_addr.clone());
            let leader_addr = leader.or(info.and_then(|i| i.leader)).and_then(|l| addr(&l));
            let followers: Vec<String> = info
                .map(|i| i.members.iter().filter(|n| Some(**n) != leader).filter_map(addr).collect())
                .unwrap_or_default();
            (name, (leader_addr, followers))
        });
        let (leader_addr, followers) = addrs;
        let mut broker_addrs = BTreeMap::new();
        broker_addrs.insert("0".to_string(), leader_addr.unwrap_or_else(|| self.advertise.clone()));
        for (i, a) in followers.into_iter().enumerate() {
            broker_addrs.insert((i + 1).to_string(), a);
        }
        BrokerData { cluster: CLUSTER.into(), broker_name: name, broker_addrs, enable_acting_master: false }
    }

    fn route_of(&self, topic: &Topic) -> TopicRouteData {
        let groups = broker_groups(topic);
        let broker_datas: Vec<BrokerData> = groups.iter().map(|g| self.broker_data(*g)).collect();
        let queue_datas = groups
            .iter()
            .zip(&broker_datas)
            .map(|(g, b)| {
                let n = broker_queues(topic, *g).len();
                QueueData {
                    broker_name: b.broker_name.clone(),
                    read_queue_nums: n,
                    write_queue_nums: n,
                    perm: perm(topic.permission),
                    topic_sys_flag: 0,
                }
            })
            .collect();
        TopicRouteData { queue_datas, broker_datas, filter_server_table: BTreeMap::new() }
    }

    /// `TBW102` when topics are created on first send: every broker group, each with the queues
    /// a new topic gets there (so a queue the producer picks from this route exists once the
    /// first send has created the topic).
    fn auto_create_route(&self) -> TopicRouteData {
        let groups: Vec<GroupId> = self.brokers.all().map(|b| b.group.id()).collect();
        let per_group = (DEFAULT_QUEUE_COUNT as usize / groups.len().max(1)).max(1);
        let broker_datas: Vec<BrokerData> = groups.iter().map(|g| self.broker_data(*g)).collect();
        TopicRouteData {
            queue_datas: broker_datas
                .iter()
                .map(|b| QueueData {
                    broker_name: b.broker_name.clone(),
                    read_queue_nums: per_group,
                    write_queue_nums: per_group,
                    perm: PERM_READ | PERM_WRITE | 1,
                    topic_sys_flag: 0,
                })
                .collect(),
            broker_datas,
            filter_server_table: BTreeMap::new(),
        }
    }

    /// GET_ROUTEINFO_BY_TOPIC: the topic's brokers and queues, or TOPIC_NOT_EXIST.
    pub async fn route(&self, req: &Command) -> Command {
        let name = match Header::of(req, false).str("topic") {
            Ok(n) => n.to_string(),
            Err(e) => return status::error(req, &e),
        };
        let route = if name == AUTO_CREATE_TOPIC && self.options.auto_create_topics {
            self.auto_create_route()
        } else {
            match self.topic(&name).await {
                Ok(t) => self.route_of(&t),
                Err(_) => {
                    return req.response(
                        rc::TOPIC_NOT_EXIST,
                        Some(format!("No topic route info in name server for the topic: {name}")),
                    );
                }
            }
        };
        json_response(req, &route)
    }

    /// GET_BROKER_CLUSTER_INFO: every broker group, all in one cluster.
    pub fn cluster_info(&self, req: &Command) -> Command {
        let ids: Vec<u32> = self.ns.read_local(|s| s.broker_groups.keys().copied().collect());
        let brokers: Vec<BrokerData> = ids.into_iter().map(|g| self.broker_data(GroupId(g))).collect();
        let info = ClusterInfo {
            cluster_addr_table: [(
                CLUSTER.to_string(),
                brokers.iter().map(|b| b.broker_name.clone()).collect(),
            )]
            .into(),
            broker_addr_table: brokers.into_iter().map(|b| (b.broker_name.clone(), b)).collect(),
        };
        json_response(req, &info)
    }
}

/// A SUCCESS response to `req` whose body is `v` as JSON.
pub fn json_response(req: &Command, v: &impl Serialize) -> Command {
    match serde_json::to_vec(v) {
        Ok(body) => status::ok(req).with_body(body),
        Err(e) => req.response(rc::SYSTEM_ERROR, Some(format!("cannot encode the answer: {e}"))),
    }
}
