//! The 4.x clients connected to this node, from their heartbeats (HEART_BEAT 34): who produces
//! for which group (transaction check-backs go to one of them), who consumes which group with
//! which subscriptions (pulls are filtered by them, GET_CONSUMER_LIST_BY_GROUP lists them), and
//! NOTIFY_CONSUMER_IDS_CHANGED when a group's members change, so that they rebalance at once.
//!
//! Soft state, kept per node: a 4.x consumer heartbeats every address of every broker in its
//! routes — every replica of every group, hence every node — so each node knows every consumer.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicI32;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use serde::Deserialize;

use super::codec::Command;
use super::codes::request as code;
use super::codes::response as rc;
use super::context::Remoting;
use super::header::Header;
use super::listener::Conn;
use super::namesrv::json_response;
use super::status;
use crate::broker::filter::Filter;
use crate::broker::names::checked_group;
use crate::error::BrokerError;

/// A client whose last heartbeat is older than this has left (Apache's channel expiry).
const CLIENT_TTL: Duration = Duration::from_secs(120);

static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(1);

/// The opaque of a request this server sends.
pub fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

/// A subscription as a heartbeat carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    /// Topic.
    pub topic: String,
    /// Tag expression (`*`, `a || b`) or SQL92 text.
    pub sub_string: String,
    /// `TAG` (default) or `SQL92`.
    pub expression_type: Option<String>,
}

impl SubscriptionData {
    /// The filter this subscription means.
    pub fn filter(&self) -> Result<Filter, BrokerError> {
        filter_of(self.expression_type.as_deref(), &self.sub_string)
    }
}

/// The filter of expression `expr` of type `kind` (`TAG` when absent).
pub fn filter_of(kind: Option<&str>, expr: &str) -> Result<Filter, BrokerError> {
    match kind {
        Some(k) if k.eq_ignore_ascii_case("SQL92") => Filter::sql(expr),
        _ if expr.trim().is_empty() => Ok(Filter::All),
        _ => Filter::tags(expr),
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ConsumerData {
    group_name: String,
    message_model: Option<String>,
    subscription_data_set: Vec<SubscriptionData>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ProducerData {
    group_name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct HeartbeatData {
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "producerDataSet")]
    producers: Vec<ProducerData>,
    #[serde(rename = "consumerDataSet")]
    consumers: Vec<ConsumerData>,
}

/// One client on one connection.
#[derive(Debug)]
struct Client {
    conn: Arc<Conn>,
    language: String,
    producers: BTreeSet<String>,
    /// Consumer group → (messaging model, subscriptions by topic).
    consumers: BTreeMap<String, (String, BTreeMap<String, SubscriptionData>)>,
    last_beat: Instant,
}

impl Client {
    fn live(&self, now: Instant) -> bool {
        self.conn.is_open() && now.saturating_duration_since(self.last_beat) < CLIENT_TTL
    }
}

/// A client as `raftmq admin` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client id.
    pub client_id: String,
    /// Its address.
    pub addr: String,
    /// Its language.
    pub language: String,
    /// Producer groups.
    pub producers: Vec<String>,
    /// Consumer groups, each with its model (CLUSTERING, BROADCASTING).
    pub consumers: Vec<(String, String)>,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Clients {
    by_key: Mutex<HashMap<(u64, String), Client>>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, String), Client>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live client ids consuming `group`, sorted.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let now = Instant::now();
        let ids: BTreeSet<String> = self
            .lock()
            .iter()
            .filter(|(_, c)| c.live(now) && c.consumers.contains_key(group))
            .map(|((_, id), _)| id.clone())
            .collect();
        ids.into_iter().collect()
    }

    /// The subscription of consumer group `group` to `topic`, from its latest heartbeat.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|c| c.live(now))
            .filter_map(|c| {
                c.consumers.get(group).and_then(|(_, subs)| subs.get(topic)).map(|s| (c.last_beat, s))
            })
            .max_by_key(|(t, _)| *t)
            .map(|(_, s)| s.clone())
    }

    /// A live connection of a producer of `group` (for transaction check-backs).
    pub fn producer_conn(&self, group: &str) -> Option<Arc<Conn>> {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|c| c.live(now) && c.producers.contains(group))
            .map(|c| c.conn.clone())
            .next()
    }

    /// Every live client, for `raftmq admin`.
    pub fn list(&self) -> Vec<ClientInfo> {
        let now = Instant::now();
        let mut out: Vec<ClientInfo> = self
            .lock()
            .iter()
            .filter(|(_, c)| c.live(now))
            .map(|((_, id), c)| ClientInfo {
                client_id: id.clone(),
                addr: c.conn.peer.to_string(),
                language: c.language.clone(),
                producers: c.producers.iter().cloned().collect(),
                consumers: c.consumers.iter().map(|(g, (m, _))| (g.clone(), m.clone())).collect(),
            })
            .collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        out
    }

    /// Records a heartbeat; returns the consumer groups whose members changed.
    fn beat(&self, conn: &Arc<Conn>, language: &str, hb: HeartbeatData) -> Vec<String> {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, c| c.live(now));
        let key = (conn.id, hb.client_id.clone());
        let before: BTreeSet<String> =
            map.get(&key).map(|c| c.consumers.keys().cloned().collect()).unwrap_or_default();
        let consumers: BTreeMap<String, (String, BTreeMap<String, SubscriptionData>)> = hb
            .consumers
            .into_iter()
            .map(|c| {
                let subs = c.subscription_data_set.into_iter().map(|s| (s.topic.clone(), s)).collect();
                (c.group_name, (c.message_model.unwrap_or_else(|| "CLUSTERING".into()), subs))
            })
            .collect();
        let after: BTreeSet<String> = consumers.keys().cloned().collect();
        map.insert(
            key,
            Client {
                conn: conn.clone(),
                language: language.to_string(),
                producers: hb.producers.into_iter().map(|p| p.group_name).collect(),
                consumers,
                last_beat: now,
            },
        );
        before.symmetric_difference(&after).cloned().collect()
    }

    /// Forgets `client_id` on `conn` (all of its groups); returns the consumer groups it left.
    fn forget(&self, conn_id: u64, client_id: Option<&str>) -> Vec<String> {
        let mut map = self.lock();
        let keys: Vec<(u64, String)> = map
            .keys()
            .filter(|(c, id)| *c == conn_id && client_id.is_none_or(|w| w == id.as_str()))
            .cloned()
            .collect();
        let mut left = BTreeSet::new();
        for k in keys {
            if let Some(c) = map.remove(&k) {
                left.extend(c.consumers.into_keys());
            }
        }
        left.into_iter().collect()
    }

    /// Tells every live consumer of each of `groups` that the group's members changed.
    fn notify(&self, groups: &[String]) {
        if groups.is_empty() {
            return;
        }
        let now = Instant::now();
        let map = self.lock();
        for g in groups {
            for c in map.values().filter(|c| c.live(now) && c.consumers.contains_key(g)) {
                let note = Command::request(code::NOTIFY_CONSUMER_IDS_CHANGED, next_opaque())
                    .with("consumerGroup", g)
                    .oneway();
                c.conn.send(note);
            }
        }
    }

    /// A connection closed: its clients leave their groups, whose other members are told.
    pub fn disconnected(&self, _rem: &Remoting, conn_id: u64) {
        let left = self.forget(conn_id, None);
        self.notify(&left);
    }
}

impl Remoting {
    /// HEART_BEAT: records the client's producer and consumer groups (creating consumer groups
    /// and their retry topics on first use, as RocketMQ does).
    pub async fn heartbeat(&self, conn: &Arc<Conn>, req: &Command) -> Command {
        let hb: HeartbeatData = match serde_json::from_slice(&req.body) {
            Ok(h) => h,
            Err(e) => {
                return status::error(
                    req,
                    &BrokerError::bad_request(format!("heartbeat body is not valid: {e}")),
                );
            }
        };
        if hb.client_id.is_empty() || hb.client_id.len() > 255 {
            return status::error(
                req,
                &BrokerError::bad_request("heartbeat clientID must be 1-255 characters"),
            );
        }
        for c in &hb.consumers {
            if let Err(e) = self.checked_consumer(c).await {
                return status::error(req, &e);
            }
        }
        let changed = self.clients.beat(conn, &req.language, hb);
        self.clients.notify(&changed);
        status::ok(req)
    }

    async fn checked_consumer(&self, c: &ConsumerData) -> Result<(), BrokerError> {
        checked_group(&c.group_name)?;
        for s in &c.subscription_data_set {
            s.filter()?;
        }
        self.consumer_group(&c.group_name).await.map(|_| ())
    }

    /// UNREGISTER_CLIENT: the client leaves its groups.
    pub fn unregister(&self, conn: &Arc<Conn>, req: &Command) -> Command {
        let h = Header::of(req, false);
        let left = self.clients.forget(conn.id, h.opt("clientID"));
        self.clients.notify(&left);
        status::ok(req)
    }

    /// GET_CONSUMER_LIST_BY_GROUP: the group's live client ids.
    pub fn consumer_list(&self, req: &Command) -> Command {
        let group = match Header::of(req, false).str("consumerGroup") {
            Ok(g) => g,
            Err(e) => return status::error(req, &e),
        };
        let ids = self.clients.consumer_ids(group);
        if ids.is_empty() {
            return req
                .response(rc::SYSTEM_ERROR, Some(format!("no consumer of group {group} is connected")));
        }
        json_response(req, &serde_json::json!({ "consumerIdList": ids }))
    }

    /// CHECK_CLIENT_CONFIG: whether a consumer's subscription (SQL92) parses here.
    pub fn check_client_config(&self, req: &Command) -> Command {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Body {
            subscription_data: Option<SubscriptionData>,
        }
        let body: Body = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return status::error(req, &BrokerError::bad_request(format!("body is not valid: {e}")));
            }
        };
        match body.subscription_data.map(|s| s.filter()).transpose() {
            Ok(_) => status::ok(req),
            Err(e) => req.response(rc::SUBSCRIPTION_PARSE_FAILED, Some(e.to_string())),
        }
    }
}
