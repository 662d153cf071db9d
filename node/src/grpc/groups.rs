//! Consumer group names as the consuming RPCs carry them (creation on first use is the broker's:
//! `BrokerService::consumer_group`).

use raftmq_proto::rocketmq as pb;

use crate::broker::names::checked_group;
use crate::error::BrokerError;

/// The consumer group name of a request, checked.
pub fn group_name(g: Option<&pb::Resource>) -> Result<String, BrokerError> {
    checked_group(g.map(|r| r.name.as_str()).unwrap_or_default())
}
