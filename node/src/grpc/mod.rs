//! The client-facing RocketMQ 5 gRPC service (`apache.rocketmq.v2.MessagingService`).

pub mod context;
pub mod convert;
pub mod dead_letter;
pub mod groups;
pub mod messaging;
pub mod pull;
pub mod recall;
pub mod receipt;
pub mod receive;
pub mod renew;
pub mod send;
pub mod status;
pub mod sweep;
pub mod telemetry;
pub mod transaction;
