//! Names as clients send them, checked by RocketMQ's rule before anything is looked up.

use raftmq_storage::nameserver::names;

use crate::error::BrokerError;
use crate::error::Reason;

/// A consumer group name from a request, checked (ILLEGAL_CONSUMER_GROUP otherwise).
pub fn checked_group(name: &str) -> Result<String, BrokerError> {
    names::check_syntax("consumer group", name)
        .map_err(|e| BrokerError::invalid(Reason::IllegalConsumerGroup, e.to_string()))?;
    Ok(name.to_string())
}
