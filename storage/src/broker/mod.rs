//! Broker groups: a Raft group whose log is the CommitLog (message bytes stored once, in the
//! entries) and whose state machine builds consume queues, indexes and consumer offsets.

pub mod id_table;
pub mod keys;
pub mod locks;
pub mod moves;
mod notify;
pub mod pop;
pub mod reader;
pub mod record;
pub mod state;
mod state_machine;
pub mod timers;
pub mod txn;

pub use notify::QueueNotifier;
pub use state::BrokerState;
pub use state::QueueState;
pub use state_machine::BrokerSm;
pub use state_machine::SharedBroker;
