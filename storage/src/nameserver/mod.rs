//! The NameServer group: cluster metadata replicated by its own Raft group on every node.

mod apply;
mod command;
mod model;
pub mod names;
mod records;
mod state_machine;

pub use apply::MAX_DELIVERY_ATTEMPTS_MAX;
pub use apply::RETENTION_SECS_MAX;
pub use command::BrokerGroupSpec;
pub use command::GroupSpec;
pub use command::MetaCommand;
pub use command::MetaError;
pub use command::MetaResponse;
pub use command::TopicSpec;
pub use command::TopicUpdate;
pub use model::BrokerGroupInfo;
pub use model::ConsumeFrom;
pub use model::ConsumeMode;
pub use model::ConsumerGroup;
pub use model::DEFAULT_MAX_DELIVERY_ATTEMPTS;
pub use model::DEFAULT_QUEUE_COUNT;
pub use model::DEFAULT_RETENTION_SECS;
pub use model::MAX_QUEUE_COUNT;
pub use model::Member;
pub use model::MessageType;
pub use model::MetaState;
pub use model::Permission;
pub use model::QueueRoute;
pub use model::Topic;
pub use records::Change;
pub use state_machine::NameServerSm;
pub use state_machine::SharedMeta;
