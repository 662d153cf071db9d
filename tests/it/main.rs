//! raftmq's integration tests: one binary, real node processes (see `raftmq_tests`).
//!
//! Files are numbered by area: `t00` project rules, `t10` NameServer and cluster basics,
//! `t20` CommitLog, `t30` consumers, `t40` official-client compatibility, `t50` message semantics.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod t00_boundaries;
mod t05_deploy;
mod t10_nameserver;
mod t12_membership;
mod t20_commitlog;
mod t22_crash;
mod t30_consumers;
mod t32_group_start;
mod t40_python_compat;
mod t45_remoting_java;
mod t46_remoting_wire;
mod t47_remoting_cross;
mod t48_remoting_rust;
mod t50_filters;
mod t55_dead_letters;
mod t60_delay;
mod t65_fifo;
mod t70_query;
mod t75_auto_create;
mod t80_transactions;
mod t85_flow_control;
mod t90_traces;

use std::path::Path;

/// The node binary cargo built for this package.
pub fn node_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_raftmq-it-node"))
}
