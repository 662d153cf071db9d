//! # raftmq-storage
//!
//! The durable state of a raftmq node: one RocksDB shared by every Raft group the node hosts, the
//! Raft log store on top of it, and the state machines (the NameServer's metadata; the broker
//! groups' consume queues come next).
//!
//! This crate knows nothing of gRPC, sockets or configuration files. It implements openraft's
//! storage traits (`RaftLogStorage`, `RaftStateMachine`) and nothing else of openraft.
//!
//! ## Layout
//! - [`store`]: opens the RocksDB (column families `log`, `raft`, `sm`) and owns the writer threads.
//! - [`writer`]: the writer threads; group commit of every group's appends behind one fsync.
//! - [`log_store`]: one group's Raft log (openraft `RaftLogStorage`), with an in-memory tail.
//! - [`nameserver`]: the NameServer state machine and its records.
//! - [`broker`]: broker groups: the CommitLog batch format, consume queues, indexes, offsets.
//! - [`snapshot`]: snapshot files shared by every state machine.
//! - [`codec`], [`raft_codec`]: the explicit on-disk encodings.
//! - [`keys`]: the key layout.

#![warn(missing_docs)]

pub mod broker;
pub mod codec;
pub mod command;
pub mod error;
pub mod format;
pub mod keys;
pub mod latency;
pub mod log_store;
pub mod nameserver;
pub mod raft_codec;
pub mod seglog;
pub mod snapshot;
mod snapshot_log;
pub mod store;
pub mod types;
mod writer;

pub use command::AppendBatch;
pub use command::Command;
pub use command::CommitOffsets;
pub use command::Response;
pub use command::Retain;
pub use error::DecodeError;
pub use error::StorageError;
pub use log_store::LogStore;
pub use log_store::LogStoreOptions;
pub use log_store::PurgeMode;
pub use snapshot::SnapshotFile;
pub use store::Store;
pub use store::StoreOptions;
pub use types::GroupId;
pub use types::NodeId;
pub use types::NodeInfo;
pub use types::TypeConfig;
pub use writer::WriterStats;
