//! # raftmq-proto
//!
//! The wire contract of raftmq, generated from the `.proto` files in this crate:
//! - [`rocketmq`]: `apache.rocketmq.v2`, the RocketMQ 5 gRPC protocol the official clients speak
//!   (raftmq's own wire-compatible rewrite: same package, services and field numbers);
//! - [`raft`]: `raftmq.raft.v1`, the internal node-to-node Raft service (internal port only);
//! - [`admin`]: `raftmq.admin.v1`, the admin service on the client port.
//!
//! Generated types stop at the edges: the storage crate never sees them.

#![allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]

/// Generated code, nested as the proto packages are so cross-package references resolve.
pub mod apache {
    pub mod rocketmq {
        pub mod v2 {
            tonic::include_proto!("apache.rocketmq.v2");
        }
    }
}

/// Generated code of raftmq's own packages.
pub mod raftmq {
    pub mod raft {
        pub mod v1 {
            tonic::include_proto!("raftmq.raft.v1");
        }
    }
    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("raftmq.admin.v1");
        }
    }
}

/// `apache.rocketmq.v2`: the RocketMQ 5 gRPC protocol.
pub use apache::rocketmq::v2 as rocketmq;
/// `raftmq.admin.v1`: cluster, topic and group administration.
pub use raftmq::admin::v1 as admin;
/// `raftmq.raft.v1`: the internal Raft transport.
pub use raftmq::raft::v1 as raft;

pub use prost;
pub use prost_types;
