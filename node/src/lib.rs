//! # raftmq-node
//!
//! The `raftmq` binary as a library (so tests can drive it): a node serving clients and peers,
//! the local cluster launcher, and the admin CLI.
//!
//! ## Layout
//! - [`server`]: runs a node until shutdown.
//! - [`config`]: the TOML config, env and flag overrides, validation.
//! - [`nameserver`]: proposals and linearizable reads of the NameServer group; bootstrap.
//! - [`admin`]: the admin gRPC service and the `raftmq admin` CLI.
//! - [`grpc`]: the RocketMQ 5 MessagingService: routes, send, pull, offsets; forwarding.
//! - [`remoting`]: RocketMQ 4.x's Remoting protocol (NameServer and broker codes).
//! - [`broker`]: the broker groups on this node: write batcher, read path, offset commits.
//! - [`balance`]: spreading broker leaders over the nodes.
//! - [`forward`]: one-hop forwarding of requests to the leader.
//! - [`authority`]: client connections whose HTTP/2 requests reach the server with a valid
//!   `:authority` (the official Python client sends a list).
//! - [`cluster`]: `raftmq cluster`; [`local_cluster`]: node processes on this machine (cluster,
//!   bench and tests use it).
//! - [`error`]: [`error::BrokerError`] and its RocketMQ status codes.
//! - [`bench`]: `raftmq bench`.
//! - [`telemetry`]: tracing subscribers.
//! - [`cli`]: the command line.

pub mod admin;
pub mod authority;
pub mod balance;
pub mod bench;
pub mod broker;
pub mod chaos;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod forward;
pub mod grpc;
pub mod local_cluster;
pub mod metrics;
pub mod nameserver;
pub mod remoting;
pub mod server;
pub mod session;
pub mod stats_log;
pub mod telemetry;
