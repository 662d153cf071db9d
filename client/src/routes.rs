//! Topic routes and the leader of every broker group, as this client knows them.
//!
//! Routes come from `QueryRoute` (cached, refreshed every 30 s or after an error). Every broker
//! answer names the leader of the group it concerns (`x-raftmq-leader: <group> <node> <term>
//! <addr>`); the client switches to it at once and ignores anything older than the term it
//! knows, instead of waiting for the next route poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;
use std::time::Instant;

use raftmq_proto::rocketmq as pb;
use raftmq_proto::rocketmq::messaging_service_client::MessagingServiceClient;
use tonic::metadata::MetadataMap;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::error::ClientError;
use crate::error::check;

/// How long a fetched route is trusted.
const ROUTE_TTL: Duration = Duration::from_secs(30);
/// How long a node that did not answer (connection refused or broken, deadline passed) is
/// avoided: requests go to the other nodes, which forward them, instead of waiting on it.
const SUSPECT_FOR: Duration = Duration::from_secs(3);
/// Response header naming a group's leader.
pub const LEADER_HEADER: &str = "x-raftmq-leader";
/// Largest message the client sends or accepts.
const MESSAGE_BYTES_MAX: usize = 32 << 20;

/// One queue of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRoute {
    /// Queue id.
    pub id: u32,
    /// Broker group holding it.
    pub group: String,
    /// Address its route named.
    pub addr: String,
    /// Producers may write.
    pub writable: bool,
    /// Consumers may read.
    pub readable: bool,
}

#[derive(Debug)]
struct TopicRoute {
    queues: Arc<Vec<QueueRoute>>,
    fetched: Instant,
}

/// Adds the RocketMQ client headers to every request.
#[derive(Clone)]
pub struct Headers {
    client_id: MetadataValue<tonic::metadata::Ascii>,
}

impl Interceptor for Headers {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        md.insert("x-mq-client-id", self.client_id.clone());
        md.insert("x-mq-language", MetadataValue::from_static("RUST"));
        md.insert("x-mq-protocol", MetadataValue::from_static("GRPC_V2"));
        md.insert("x-mq-client-version", MetadataValue::from_static(env!("CARGO_PKG_VERSION")));
        Ok(req)
    }
}

/// A MessagingService client with the headers added.
pub type Client = MessagingServiceClient<InterceptedService<Channel, Headers>>;

/// Routes, leaders and connections of one SDK client.
pub struct Routes {
    access: Vec<String>,
    headers: Headers,
    pub(crate) timeout: Duration,
    channels: RwLock<HashMap<String, Channel>>,
    topics: RwLock<HashMap<String, TopicRoute>>,
    leaders: RwLock<HashMap<String, (u64, u64, String)>>,
    suspects: RwLock<HashMap<String, Instant>>,
}

impl Routes {
    /// Routes through the access points `endpoints` (`host:port`, separated by `,` or by `;` as
    /// the official clients write them).
    pub fn new(endpoints: &str, client_id: &str, timeout: Duration) -> Result<Self, ClientError> {
        let access: Vec<String> =
            endpoints.split([',', ';']).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if access.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no endpoints: give host:port of at least one node".into(),
            ));
        }
        let client_id = MetadataValue::try_from(client_id)
            .map_err(|e| ClientError::InvalidArgument(format!("client id: {e}")))?;
        Ok(Self {
            access,
            headers: Headers { client_id },
            timeout,
            channels: RwLock::default(),
            topics: RwLock::default(),
            leaders: RwLock::default(),
            suspects: RwLock::default(),
        })
    }

    /// A client of the node at `addr`.
    pub fn client(&self, addr: &str) -> Result<Client, ClientError> {
        let cached = self.channels.read().unwrap_or_else(|e| e.into_inner()).get(addr).cloned();
        let ch = match cached {
            Some(c) => c,
            None => {
                let c = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| ClientError::InvalidArgument(format!("bad address {addr:?}: {e}")))?
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(1))
                    .keep_alive_timeout(Duration::from_secs(2))
                    .keep_alive_while_idle(true)
                    .initial_stream_window_size(Some(4 << 20))
                    .initial_connection_window_size(Some(16 << 20))
                    .connect_lazy();
                self.channels.write().unwrap_or_else(|e| e.into_inner()).insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(MessagingServiceClient::with_interceptor(ch, self.headers.clone())
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX))
    }

    /// A request with the client's timeout.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.timeout);
        r
    }

    /// The queues of `topic`, from cache or from a `QueryRoute`.
    pub async fn queues(&self, topic: &str) -> Result<Arc<Vec<QueueRoute>>, ClientError> {
        if let Some(t) = self.topics.read().unwrap_or_else(|e| e.into_inner()).get(topic)
            && t.fetched.elapsed() < ROUTE_TTL
        {
            return Ok(t.queues.clone());
        }
        self.refresh(topic).await
    }

    /// Fetches `topic`'s route from the first access point that answers, trying those not
    /// suspected down first.
    pub async fn refresh(&self, topic: &str) -> Result<Arc<Vec<QueueRoute>>, ClientError> {
        let mut last = ClientError::Transport("no access point answered".into());
        let mut order: Vec<&String> = self.access.iter().collect();
        order.sort_by_key(|a| self.is_suspect(a));
        for addr in order {
            let req = pb::QueryRouteRequest {
                topic: crate::wire::resource(topic),
                endpoints: Some(pb::Endpoints::default()),
            };
            let resp = match self.client(addr)?.query_route(self.request(req)).await {
                Ok(r) => {
                    self.answered(addr);
                    r.into_inner()
                }
                Err(s) => {
                    self.failed(addr, &s);
                    last = s.into();
                    continue;
                }
            };
            check(resp.status.as_ref())?;
            let queues: Vec<QueueRoute> = resp
                .message_queues
                .into_iter()
                .filter_map(|q| {
                    let broker = q.broker?;
                    let ep = broker.endpoints?.addresses.into_iter().next()?;
                    let perm = pb::Permission::try_from(q.permission).unwrap_or(pb::Permission::None);
                    Some(QueueRoute {
                        id: q.id.max(0) as u32,
                        group: broker.name,
                        addr: format!("{}:{}", ep.host, ep.port),
                        writable: matches!(perm, pb::Permission::Write | pb::Permission::ReadWrite),
                        readable: matches!(perm, pb::Permission::Read | pb::Permission::ReadWrite),
                    })
                })
                .collect();
            if queues.is_empty() {
                return Err(ClientError::BadResponse(format!("route of {topic} has no queue")));
            }
            let queues = Arc::new(queues);
            self.topics
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(topic.to_string(), TopicRoute { queues: queues.clone(), fetched: Instant::now() });
            return Ok(queues);
        }
        Err(last)
    }

    /// The access points this client was given.
    pub fn access(&self) -> &[String] {
        &self.access
    }

    /// The broker groups holding readable queues of `topic`, sorted.
    pub async fn readable_brokers(&self, topic: &str) -> Result<Vec<String>, ClientError> {
        let queues = self.queues(topic).await?;
        let mut brokers: Vec<String> =
            queues.iter().filter(|q| q.readable).map(|q| q.group.clone()).collect();
        brokers.sort_unstable();
        brokers.dedup();
        Ok(brokers)
    }

    /// Runs `call` on the leader of the queue of `topic` that `pick` chooses (`missing` when
    /// none), learning leaders from the answer. On a transport failure it forgets that leader
    /// and the route and tries again with a fresh one, up to `tries` times in all.
    pub(crate) async fn call_leader<T, P, M, F, Fut>(
        &self,
        topic: &str,
        tries: usize,
        pick: P,
        missing: M,
        mut call: F,
    ) -> Result<T, ClientError>
    where
        P: Fn(&QueueRoute) -> bool,
        M: Fn() -> ClientError,
        F: FnMut(Client, &QueueRoute) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = ClientError::Transport("not sent".into());
        for _ in 0..tries.max(1) {
            let queues = self.queues(topic).await?;
            let Some(q) = queues.iter().find(|q| pick(q)) else { return Err(missing()) };
            match call(self.client(&self.addr_of(q))?, q).await {
                Ok(r) => {
                    self.learn(r.metadata());
                    return Ok(r.into_inner());
                }
                Err(s) => {
                    self.forget_leader(&q.group);
                    self.invalidate(topic);
                    last = s.into();
                }
            }
        }
        Err(last)
    }

    /// Where requests for queue `q` go: the newest leader this client learned for its group, else
    /// the route's address.
    pub fn addr_of(&self, q: &QueueRoute) -> String {
        self.leaders
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&q.group)
            .map_or_else(|| q.addr.clone(), |(_, _, a)| a.clone())
    }

    /// Learns leaders from an answer's headers; older terms than known are ignored.
    pub fn learn(&self, md: &MetadataMap) {
        for v in md.get_all(LEADER_HEADER) {
            let Ok(s) = v.to_str() else { continue };
            let parts: Vec<&str> = s.split(' ').collect();
            let [group, node, term, addr] = parts.as_slice() else { continue };
            let (Ok(node), Ok(term)) = (node.parse::<u64>(), term.parse::<u64>()) else { continue };
            let mut leaders = self.leaders.write().unwrap_or_else(|e| e.into_inner());
            match leaders.get(*group) {
                Some((_, known, _)) if *known > term => {}
                _ => {
                    leaders.insert(group.to_string(), (node, term, addr.to_string()));
                }
            }
        }
    }

    /// Notes that the node at `addr` failed a request with `s`: when the failure says it did not
    /// answer (rather than refused the request), it is avoided for a while.
    pub fn failed(&self, addr: &str, s: &tonic::Status) {
        use tonic::Code;
        if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown) {
            let until = Instant::now() + SUSPECT_FOR;
            self.suspects.write().unwrap_or_else(|e| e.into_inner()).insert(addr.to_string(), until);
        }
    }

    /// Notes that the node at `addr` answered: it is no longer avoided.
    pub fn answered(&self, addr: &str) {
        if self.suspects.read().unwrap_or_else(|e| e.into_inner()).contains_key(addr) {
            self.suspects.write().unwrap_or_else(|e| e.into_inner()).remove(addr);
        }
    }

    /// Whether to keep requests away from the node at `addr`: it failed to answer lately and
    /// another access point has not. With no other choice, the request goes (and probes it).
    pub fn avoid(&self, addr: &str) -> bool {
        self.is_suspect(addr) && self.access.iter().any(|a| a != addr && !self.is_suspect(a))
    }

    /// Whether the node at `addr` failed to answer lately.
    pub fn is_suspect(&self, addr: &str) -> bool {
        self.suspects.read().unwrap_or_else(|e| e.into_inner()).get(addr).is_some_and(|t| Instant::now() < *t)
    }

    /// Forgets what is known of `group`'s leader (after it failed to answer).
    pub fn forget_leader(&self, group: &str) {
        self.leaders.write().unwrap_or_else(|e| e.into_inner()).remove(group);
    }

    /// Forgets `topic`'s route.
    pub fn invalidate(&self, topic: &str) {
        self.topics.write().unwrap_or_else(|e| e.into_inner()).remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_did_not_answer_is_avoided_while_another_did() {
        let r = Routes::new("a:1,b:2", "test", Duration::from_secs(1)).expect("routes");
        r.failed("a:1", &tonic::Status::invalid_argument("bad request"));
        assert!(!r.is_suspect("a:1"), "a refusal is an answer");
        r.failed("a:1", &tonic::Status::unavailable("tcp connect error"));
        assert!(r.is_suspect("a:1") && r.avoid("a:1"));
        assert!(!r.avoid("b:2"));
        // With every node suspected, requests go anyway (they probe).
        r.failed("b:2", &tonic::Status::deadline_exceeded("late"));
        assert!(!r.avoid("a:1") && !r.avoid("b:2"));
        r.answered("a:1");
        assert!(!r.is_suspect("a:1") && r.avoid("b:2"));
    }

    #[test]
    fn endpoints_split_on_commas_and_semicolons() {
        let r = Routes::new(" a:1; b:2,c:3;;", "test", Duration::from_secs(1)).expect("routes");
        assert_eq!(r.access(), ["a:1", "b:2", "c:3"]);
        assert!(Routes::new(" ; ,", "test", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_single_endpoint_is_never_avoided() {
        let r = Routes::new("a:1", "test", Duration::from_secs(1)).expect("routes");
        r.failed("a:1", &tonic::Status::unavailable("tcp connect error"));
        assert!(r.is_suspect("a:1") && !r.avoid("a:1"));
    }
}
