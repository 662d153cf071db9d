//! # raftmq-client
//!
//! The Rust SDK of raftmq. It speaks RocketMQ 5's gRPC protocol like the official clients, and
//! adds what they lack: administration ([`AdminClient`]), broadcasting and pull consumers.
//!
//! This crate depends on the wire contract only (`raftmq-proto`): never on RocksDB or openraft.

#![warn(missing_docs)]

pub mod admin;
pub mod broadcast;
pub mod consumer;
pub mod error;
mod lanes;
pub mod message;
pub mod producer;
pub mod push;
pub mod rebalance;
pub mod routes;
pub mod simple;
mod stop;
pub mod trace;
mod wire;

pub use admin::AdminClient;
pub use broadcast::BroadcastConsumer;
pub use broadcast::BroadcastConsumerOptions;
pub use consumer::Assignment;
pub use consumer::OffsetPolicy;
pub use consumer::PullConsumer;
pub use consumer::PullConsumerOptions;
pub use consumer::Pulled;
pub use error::ClientError;
pub use message::DELAY_LEVELS;
pub use message::Message;
pub use message::MessageView;
pub use producer::Producer;
pub use producer::ProducerOptions;
pub use producer::SendReceipt;
pub use push::ConsumeResult;
pub use push::PushConsumer;
pub use push::PushConsumerOptions;
/// The generated wire types, for callers that need fields the SDK does not wrap.
pub use raftmq_proto as proto;
pub use rebalance::Strategy;
pub use simple::Received;
pub use simple::SimpleConsumer;
pub use simple::SimpleConsumerOptions;
pub use simple::Subscription;
