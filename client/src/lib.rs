//! # raftmq-client
//!
//! The Rust SDK of raftmq. It speaks RocketMQ 5's gRPC protocol like the official clients, and
//! adds what they lack: administration ([`AdminClient`]), broadcasting and pull consumers.
//!
//! This crate depends on the wire contract only (`raftmq-proto`): never on RocksDB or openraft.

#![warn(missing_docs)]

pub mod admin;
pub mod error;

pub use admin::AdminClient;
pub use error::ClientError;
/// The generated wire types, for callers that need fields the SDK does not wrap.
pub use raftmq_proto as proto;
