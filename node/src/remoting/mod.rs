//! RocketMQ 4.x's Remoting protocol: the NameServer and broker request codes the 4.x clients
//! (Java `rocketmq-client` 4.9.x, Go, C++, `rocketmq-client-rust`) send, on one TCP port. Like
//! `grpc/`, a front end only: requests become the broker core's operations (`broker/`), answers
//! become 4.x responses.

pub mod clients;
pub mod codec;
pub mod codes;
pub mod context;
pub mod convert;
pub mod forward;
pub mod header;
pub mod listener;
pub mod lock;
pub mod message;
pub mod namesrv;
pub mod offsets;
pub mod pull;
pub mod query;
pub mod queues;
pub mod retry;
pub mod send;
pub mod status;
pub mod txn;

pub use context::Remoting;
