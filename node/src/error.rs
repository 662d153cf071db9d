//! Errors a node returns to clients, in no protocol's terms. Every client-facing failure becomes a
//! [`BrokerError`] whose [`Reason`] says what went wrong; each front end maps reasons to its
//! wire once (`grpc::status`, `remoting::status`).

use raftmq_raft::RaftError;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;
use raftmq_storage::nameserver::MetaError;
use raftmq_storage::nameserver::names::NameError;

/// Why a request was refused, in RocketMQ's vocabulary (each front end has a code for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Something in the request is invalid (no more specific reason applies).
    BadRequest,
    /// The topic name breaks the naming rule.
    IllegalTopic,
    /// The consumer group name breaks the naming rule.
    IllegalConsumerGroup,
    /// A message tag is blank or contains `|`.
    IllegalMessageTag,
    /// A message key is blank.
    IllegalMessageKey,
    /// A message group is blank or too long.
    IllegalMessageGroup,
    /// A message id is blank.
    IllegalMessageId,
    /// A delivery time is in the past or too far ahead.
    IllegalDeliveryTime,
    /// An invisible time is outside the allowed range.
    IllegalInvisibleTime,
    /// A filter expression does not parse.
    IllegalFilterExpression,
    /// An offset is outside a queue.
    IllegalOffset,
    /// The request names no client.
    ClientIdRequired,
    /// A client that never introduced itself.
    UnrecognizedClientType,
    /// A message body is empty.
    MessageBodyEmpty,
    /// A message body is too large.
    MessageBodyTooLarge,
    /// A message's properties are too large.
    MessagePropertiesTooLarge,
    /// A message's kind does not fit its topic's type.
    MessagePropertyConflictWithType,
    /// A receipt handle is unknown, stale or expired.
    InvalidReceiptHandle,
    /// A transaction id (or recall handle) this cluster did not issue, or one ended already.
    InvalidTransactionId,
    /// The topic's permission forbids it.
    Forbidden,
    /// The topic does not exist.
    TopicNotFound,
    /// The consumer group does not exist.
    ConsumerGroupNotFound,
    /// The group has no committed offset there.
    OffsetNotFound,
    /// No such message (or nothing to hand out).
    MessageNotFound,
    /// Slow down: a backlog or the memory budget is full.
    TooManyRequests,
    /// The group has no leader that can serve now (election, no quorum, stopped).
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}

/// A request failed; the variant decides the reason, the text is the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The client sent something invalid.
    #[error("{message}")]
    BadRequest {
        /// The specific reason (ILLEGAL_TOPIC, BAD_REQUEST, ...).
        code: Reason,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Something named does not exist.
    #[error("{message}")]
    NotFound {
        /// TOPIC_NOT_FOUND, CONSUMER_GROUP_NOT_FOUND, ...
        code: Reason,
        /// What is missing.
        message: String,
    },
    /// This node cannot serve the request and forwarding was not possible.
    #[error("{0}")]
    NotLeader(RaftError),
    /// The group cannot serve right now (no quorum, no leader, stopped).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    /// A BAD_REQUEST with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        BrokerError::BadRequest { code: Reason::BadRequest, message: message.into() }
    }

    /// An invalid request for `code`.
    pub fn invalid(code: Reason, message: impl Into<String>) -> Self {
        BrokerError::BadRequest { code, message: message.into() }
    }

    /// The reason of this error.
    pub fn code(&self) -> Reason {
        match self {
            BrokerError::BadRequest { code, .. } | BrokerError::NotFound { code, .. } => *code,
            BrokerError::NotLeader(_) | BrokerError::Unavailable(_) => Reason::Unavailable,
            BrokerError::Internal(_) => Reason::Internal,
        }
    }

    /// The leader to go to instead, if this error names one.
    pub fn leader(&self) -> Option<&(NodeId, NodeInfo)> {
        match self {
            BrokerError::NotLeader(e) => e.leader(),
            _ => None,
        }
    }
}

impl From<RaftError> for BrokerError {
    fn from(e: RaftError) -> Self {
        match e {
            RaftError::NotLeader { .. } | RaftError::Indeterminate { .. } => BrokerError::NotLeader(e),
            RaftError::GroupNotFound(_) | RaftError::Rejected { .. } => BrokerError::Internal(e.to_string()),
            RaftError::NoQuorum { .. } | RaftError::Fatal { .. } => BrokerError::Unavailable(e.to_string()),
        }
    }
}

impl From<MetaError> for BrokerError {
    fn from(e: MetaError) -> Self {
        let message = e.to_string();
        match e {
            MetaError::TopicNotFound(_) => BrokerError::NotFound { code: Reason::TopicNotFound, message },
            MetaError::GroupNotFound(_) => {
                BrokerError::NotFound { code: Reason::ConsumerGroupNotFound, message }
            }
            MetaError::Name(
                NameError::Empty { kind }
                | NameError::TooLong { kind, .. }
                | NameError::BadChar { kind, .. }
                | NameError::Reserved { kind, .. },
            ) => {
                let code = if kind == "topic" { Reason::IllegalTopic } else { Reason::IllegalConsumerGroup };
                BrokerError::BadRequest { code, message }
            }
            MetaError::TopicExists(_) | MetaError::GroupExists(_) | MetaError::Invalid(_) => {
                BrokerError::BadRequest { code: Reason::BadRequest, message }
            }
            MetaError::NoBrokerGroups => BrokerError::Unavailable(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use raftmq_storage::nameserver::names;

    use super::*;

    #[test]
    fn reasons_follow_rocketmq() {
        let e: BrokerError = MetaError::TopicNotFound("t".into()).into();
        assert_eq!(e.code(), Reason::TopicNotFound);
        let e: BrokerError = MetaError::Name(names::check_topic("a/b").unwrap_err()).into();
        assert_eq!(e.code(), Reason::IllegalTopic);
        let e: BrokerError = MetaError::Name(names::check_group("").unwrap_err()).into();
        assert_eq!(e.code(), Reason::IllegalConsumerGroup);
    }
}
