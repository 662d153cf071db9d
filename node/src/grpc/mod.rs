//! The client-facing RocketMQ 5 gRPC service (`apache.rocketmq.v2.MessagingService`).

pub mod context;
pub mod convert;
pub mod messaging;
pub mod pull;
pub mod send;
