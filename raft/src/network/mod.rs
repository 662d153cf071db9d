//! The Raft transport: one tonic server per node (internal port) and one pooled channel per
//! peer, shared by every group; requests carry their group id.

pub mod peers;
pub mod router;
pub mod service;
