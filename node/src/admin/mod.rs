//! Administration: the gRPC service nodes serve and the `raftmq admin` CLI that calls it.

pub mod cli;
pub mod clients;
mod convert;
pub mod dlq;
pub mod leader;
pub mod members;
pub mod membership;
pub mod message;
pub mod node;
mod remoting;
pub mod service;
mod table;
