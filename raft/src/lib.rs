//! # raftmq-raft
//!
//! Multi-raft for raftmq: the Raft type configuration in use, one openraft instance per group, and
//! the tonic transport that carries every group's traffic over one channel per peer node.
//!
//! This crate is the only one that drives openraft (storage implements its storage traits, no
//! more); an upgrade of the pinned alpha touches this crate and `storage` only. It holds no broker
//! logic: it proposes commands and reports what apply returned.
//!
//! ## Layout
//! - [`host`]: [`RaftHost`], the Raft side of a node; starts groups.
//! - [`group`]: [`Group`], a handle to one group (write, linearizable read, status).
//! - [`groups`]: the registry the service routes by.
//! - [`network`]: peer pool, `GroupRouter` (sending), `RaftService` (receiving).
//! - [`pb`]: openraft types ↔ wire messages.
//! - [`config`]: timeouts and per-kind openraft configs.

pub mod config;
pub mod error;
pub mod group;
pub mod groups;
pub mod host;
pub mod network;
pub mod pb;
pub mod status;

pub use config::RaftSettings;
pub use error::RaftError;
pub use group::Group;
pub use groups::Groups;
pub use host::RaftHost;
pub use status::GroupStatus;
