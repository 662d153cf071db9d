//! A running node: storage, the Raft groups, the internal server (peers) and the client server
//! (RocketMQ gRPC and admin), until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raftmq_proto::admin::admin_service_server::AdminServiceServer;
use raftmq_proto::rocketmq::messaging_service_server::MessagingServiceServer;
use raftmq_raft::RaftHost;
use raftmq_storage::Store;
use raftmq_storage::StoreOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::admin::service::AdminServiceImpl;
use crate::authority::AuthorityFix;
use crate::broker::Brokers;
use crate::broker::batcher::BatcherOptions;
use crate::broker::flow::Flow;
use crate::broker::service::BrokerOptions;
use crate::broker::service::BrokerService;
use crate::config::NodeConfig;
use crate::forward::ClientChannels;
use crate::grpc::context::CLIENT_MESSAGE_BYTES_MAX;
use crate::grpc::context::Context;
use crate::grpc::messaging::MessagingServiceImpl;
use crate::metrics::Metrics;
use crate::metrics::requests::RequestCounts;
use crate::nameserver;
use crate::nameserver::NameServer;

/// Why a node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory cannot be opened.
    #[error("cannot open the data directory {dir}: {reason}")]
    Storage {
        /// The directory.
        dir: String,
        /// What went wrong.
        reason: String,
    },
    /// A listen address is taken or not local.
    #[error("cannot listen on {addr} ({what}): {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Which port (internal or client).
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A Raft group failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// A server failed while running.
    #[error("server: {0}")]
    Server(String),
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr).await.map_err(|e| NodeError::Listen { addr, what, reason: e.to_string() })
}

/// Accepted connections with Nagle off: `Server::tcp_nodelay` does not reach sockets of a listener
/// we bound ourselves, and with Nagle on, small answers waited for the peer's delayed ACK (40 ms).
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Accepted client connections, read through [`AuthorityFix`] (any `:authority` a client sends
/// is accepted, as the RocketMQ proxy does).
fn client_incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<AuthorityFix<tokio::net::TcpStream>>> {
    use futures::StreamExt;
    incoming(listener).map(|conn| conn.map(AuthorityFix::new))
}

fn server_builder() -> Server {
    Server::builder()
        .tcp_nodelay(true)
        // Raft appends of up to 2 MiB: a 64 KiB window would cost several round trips each.
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(32 << 20))
        .http2_keepalive_interval(Some(Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(Duration::from_secs(2)))
}

/// The file in a node's data directory that holds its process id, for the chaos scripts, the
/// benchmarks' CPU figures and `raftmq cluster` stopping nodes it did not start.
pub const PID_FILE: &str = "raftmq.pid";

/// How long background tasks, then the servers, get to stop after SIGTERM before they are
/// aborted.
const TASKS_STOP_WAIT: Duration = Duration::from_secs(3);

/// The process id a node recorded in `data_dir`, if the file is there and holds one.
pub fn read_pid(data_dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join(PID_FILE)).ok()?.trim().parse().ok()
}

/// Runs a node until `shutdown` resolves, then stops it cleanly.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let node_id = config.node_id;
    let dir = config.data_dir.clone();
    let store_opts = StoreOptions {
        direct_io: config.broker.direct_io,
        segment_bytes: config.broker.segment_mib << 20,
        ..StoreOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, &store_opts))
        .await
        .map_err(|e| NodeError::Storage {
            dir: config.data_dir.display().to_string(),
            reason: e.to_string(),
        })?
        .map_err(|e| NodeError::Storage {
            dir: config.data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
    let pid_file = config.data_dir.join(PID_FILE);
    if let Err(e) = std::fs::write(&pid_file, std::process::id().to_string()) {
        tracing::warn!(path = %pid_file.display(), error = %e, "cannot write pid file");
    }

    let raft_listener = bind(config.raft_listen, "raft_addr, internal").await?;
    let client_listener = bind(config.client_listen, "client_addr").await?;
    let remoting_listener = bind(config.remoting_listen, "remoting_addr").await?;

    // On a loopback address (127.0.0.11-13 in deploy/run-local), outgoing connections leave
    // from it too, so a firewall rule on that address isolates the node in both directions.
    let source = Some(config.raft_listen.ip()).filter(|ip| ip.is_loopback());
    let host = Arc::new(RaftHost::new(node_id, store.clone(), config.raft.clone(), source));
    for m in config.initial_members.iter().filter(|m| m.id != node_id) {
        host.set_peer_addr(m.id, &m.raft_addr);
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let raft_service = host.service();
    let mut stop = stop_rx.clone();
    tasks.spawn(async move {
        server_builder()
            .add_service(raft_service)
            .serve_with_incoming_shutdown(incoming(raft_listener), async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .map_err(|e| NodeError::Server(format!("internal server: {e}")))
    });

    if store.created() {
        nameserver::check_not_wiped(&host, &config).await.map_err(|e| NodeError::Raft(e.to_string()))?;
    }
    let (ns_group, meta) = host.start_nameserver().await.map_err(|e| NodeError::Raft(e.to_string()))?;
    let configured = config
        .initial_members
        .iter()
        .map(|m| (m.id, raftmq_storage::NodeInfo::new(m.raft_addr.clone(), m.client_addr.clone())))
        .collect();
    let channels = Arc::new(ClientChannels::with_source(source));
    let ns = NameServer::new(ns_group, host.clone(), meta, configured, channels.clone());
    let b = &config.broker;
    let batcher = BatcherOptions {
        batch_bytes_max: (b.batch_kib_max << 10) as usize,
        linger: Duration::from_micros(b.linger_us),
        inflight_bytes_max: (b.inflight_mib_max << 20) as usize,
        ..Default::default()
    };
    let flow = Flow::new(b.memory_budget_mib << 20);
    let brokers = Brokers::start(
        &host,
        config.broker_groups,
        &config.client_advertise,
        &batcher,
        &flow,
        (b.tail_cache_mib << 20) as usize,
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    let mut all_groups = vec![ns.group().clone()];
    all_groups.extend(brokers.all().map(|b| b.group.clone()));
    for g in &all_groups {
        if let Err(e) = nameserver::initialize_if_new(&host, g, &config).await {
            tracing::error!(group = %g.id(), error = %e, "cannot initialize the group");
        }
    }

    let broker = BrokerService::new(
        node_id,
        ns.clone(),
        brokers.clone(),
        BrokerOptions {
            invisible_ms_min: config.broker.invisible_ms_min,
            auto_create_groups: config.broker.auto_create_groups,
            delay_max_ms: (config.broker.delay_max_secs as i64).saturating_mul(1000),
            auto_create_topics: config.broker.auto_create_topics,
            retry_delays_ms: config.broker.retry_delays_ms.clone(),
        },
    );
    let store_host = crate::remoting::context::store_host(&config.remoting_advertise).await;
    let remoting =
        crate::remoting::Remoting::new(broker.clone(), config.remoting_advertise.clone(), store_host);
    let admin = AdminServiceServer::new(
        AdminServiceImpl::new(node_id, ns.clone(), brokers.clone(), host.clone(), channels.clone())
            .with_remoting(remoting.clone()),
    );
    let ctx = Arc::new(Context::new(broker.clone(), config.client_advertise.clone(), channels));
    let renewals = tokio::spawn(crate::grpc::renew::run(ctx.clone(), stop_rx.clone()));
    let txn_opts = crate::broker::txn_check::TxnOptions {
        check_interval: Duration::from_secs(config.broker.transaction_check_secs),
        checks_max: config.broker.transaction_checks_max,
    };
    // Check-backs reach producers through either front end.
    let checkers: Vec<Arc<dyn crate::broker::txn_check::TxnChecker>> = vec![ctx.clone(), remoting.clone()];
    let txn_checks =
        tokio::spawn(crate::broker::txn_check::run(broker.clone(), checkers, txn_opts, stop_rx.clone()));
    let sweep = tokio::spawn(crate::grpc::sweep::run(ctx.clone(), stop_rx.clone()));
    let flow_sampler = tokio::spawn(flow.clone().run(brokers.clone(), stop_rx.clone()));
    let service_stats = ctx.stats.clone();
    let grpc_requests = Arc::new(RequestCounts::<String>::default());
    let metrics = Metrics {
        node_id,
        ns: ns.clone(),
        brokers: brokers.clone(),
        store: store.clone(),
        flow: flow.clone(),
        service: service_stats.clone(),
        remoting: remoting.clone(),
        grpc_requests: grpc_requests.clone(),
    };
    let messaging = MessagingServiceServer::new(MessagingServiceImpl::new(ctx))
        .max_decoding_message_size(CLIENT_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(CLIENT_MESSAGE_BYTES_MAX);
    // The gRPC services, and `GET /metrics` (HTTP/1.1, for Prometheus) on the same port.
    let routes = tonic::service::Routes::new(admin)
        .add_service(messaging)
        .into_axum_router()
        .route("/metrics", axum::routing::get(move || metrics.clone().page()))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                if let Some(method) = crate::metrics::requests::grpc_method(req.uri().path()) {
                    grpc_requests.count(method);
                }
                next.run(req)
            },
        ));
    let mut stop = stop_rx.clone();
    tasks.spawn(async move {
        server_builder()
            .accept_http1(true)
            .add_routes(routes.into())
            .serve_with_incoming_shutdown(client_incoming(client_listener), async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .map_err(|e| NodeError::Server(format!("client server: {e}")))
    });

    let remoting_server =
        tokio::spawn(crate::remoting::listener::serve(remoting_listener, remoting, stop_rx.clone()));
    let announce = tokio::spawn(nameserver::announce_remoting(
        ns.clone(),
        node_id,
        config.remoting_advertise.clone(),
        stop_rx.clone(),
    ));
    let duties =
        tokio::spawn(nameserver::leader_duties(ns.clone(), config.clone(), brokers.clone(), stop_rx.clone()));
    let balancer = config
        .broker
        .balance_leaders
        .then(|| tokio::spawn(crate::balance::run(node_id, ns.clone(), brokers.clone(), stop_rx.clone())));
    let stats = tokio::spawn(crate::stats_log::run(
        store.clone(),
        brokers.clone(),
        service_stats,
        Duration::from_secs(5),
        stop_rx.clone(),
    ));
    let retention = tokio::spawn(crate::broker::retention::run(
        ns.clone(),
        brokers.clone(),
        Duration::from_secs(config.broker.retention_check_secs),
        config.broker.compact_min_entries,
        stop_rx.clone(),
    ));
    let timers = tokio::spawn(crate::broker::timers::run(brokers.clone(), stop_rx.clone()));
    tracing::info!(
        node = node_id,
        raft = %config.raft_listen,
        client = %config.client_listen,
        remoting = %config.remoting_listen,
        data = %config.data_dir.display(),
        "node started"
    );

    let failed = tokio::select! {
        () = shutdown => None,
        Some(res) = tasks.join_next() => Some(res),
    };
    tracing::info!(node = node_id, "node stopping");
    // Before the internal server stops: the new leaders must still reach this node, so that
    // they learn how far its log goes (a wiped node restarting under this id is then refused, see
    // `nameserver::check_not_wiped`).
    if failed.is_none() {
        crate::balance::hand_over(node_id, host.groups().all(), &ns.retired()).await;
    }
    let _ = stop_tx.send(true);
    // Background tasks see the stop at their next step; one may be waiting on a proposal that
    // can never commit (the last node of a cluster stopping, a leader without its quorum): they
    // get a bounded time, then are aborted, so SIGTERM always ends the process.
    let deadline = tokio::time::Instant::now() + TASKS_STOP_WAIT;
    let mut background = vec![
        ("leader duties", duties),
        ("remoting announce", announce),
        ("remoting server", remoting_server),
        ("stats", stats),
        ("retention", retention),
        ("timers", timers),
        ("transaction checks", txn_checks),
        ("sweep", sweep),
        ("flow sampler", flow_sampler),
        ("renewals", renewals),
    ];
    background.extend(balancer.map(|b| ("balancer", b)));
    for (name, task) in background {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
            tracing::warn!(task = name, "background task did not stop in time; aborted");
        }
    }
    host.shutdown().await;
    // The servers close their listeners at once and drain open connections; a client that keeps
    // one open (a long poll) does not hold the process.
    let drained =
        tokio::time::timeout(TASKS_STOP_WAIT, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("servers did not drain their connections in time; closing them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!(node = node_id, "node stopped");
    match failed {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(NodeError::Server(e.to_string())),
        _ => Ok(()),
    }
}
