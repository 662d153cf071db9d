//! Errors a node returns to clients, and their RocketMQ status codes. Every client-facing failure
//! becomes a [`BrokerError`] and then, in exactly one place ([`BrokerError::status`]), an
//! `apache.rocketmq.v2.Status`.

use raftmq_proto::rocketmq::Code;
use raftmq_proto::rocketmq::Status;
use raftmq_raft::RaftError;
use raftmq_storage::NodeId;
use raftmq_storage::NodeInfo;
use raftmq_storage::nameserver::MetaError;
use raftmq_storage::nameserver::names::NameError;

/// A request failed; the variant decides the status code, the text is the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The client sent something invalid.
    #[error("{message}")]
    BadRequest {
        /// The specific RocketMQ code (ILLEGAL_TOPIC, BAD_REQUEST, ...).
        code: Code,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Something named does not exist.
    #[error("{message}")]
    NotFound {
        /// TOPIC_NOT_FOUND, CONSUMER_GROUP_NOT_FOUND, ...
        code: Code,
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
        BrokerError::BadRequest { code: Code::BadRequest, message: message.into() }
    }

    /// The RocketMQ code of this error.
    pub fn code(&self) -> Code {
        match self {
            BrokerError::BadRequest { code, .. } | BrokerError::NotFound { code, .. } => *code,
            BrokerError::NotLeader(_) | BrokerError::Unavailable(_) => Code::HaNotAvailable,
            BrokerError::Internal(_) => Code::InternalServerError,
        }
    }

    /// The status to put in a response body.
    pub fn status(&self) -> Status {
        Status { code: self.code() as i32, message: self.to_string() }
    }

    /// The leader to go to instead, if this error names one.
    pub fn leader(&self) -> Option<&(NodeId, NodeInfo)> {
        match self {
            BrokerError::NotLeader(e) => e.leader(),
            _ => None,
        }
    }
}

/// The status answering a request that `res` settled; a refusal is logged (debug) as `what`.
pub fn outcome_status(res: Result<(), BrokerError>, what: &str) -> Status {
    match res {
        Ok(()) => ok_status(),
        Err(e) => {
            tracing::debug!(error = %e, request = what, "request refused");
            e.status()
        }
    }
}

/// The OK status.
pub fn ok_status() -> Status {
    Status { code: Code::Ok as i32, message: "OK".to_string() }
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
            MetaError::TopicNotFound(_) => BrokerError::NotFound { code: Code::TopicNotFound, message },
            MetaError::GroupNotFound(_) => {
                BrokerError::NotFound { code: Code::ConsumerGroupNotFound, message }
            }
            MetaError::Name(
                NameError::Empty { kind }
                | NameError::TooLong { kind, .. }
                | NameError::BadChar { kind, .. }
                | NameError::Reserved { kind, .. },
            ) => {
                let code = if kind == "topic" { Code::IllegalTopic } else { Code::IllegalConsumerGroup };
                BrokerError::BadRequest { code, message }
            }
            MetaError::TopicExists(_) | MetaError::GroupExists(_) | MetaError::Invalid(_) => {
                BrokerError::BadRequest { code: Code::BadRequest, message }
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
    fn codes_follow_rocketmq() {
        let e: BrokerError = MetaError::TopicNotFound("t".into()).into();
        assert_eq!(e.code(), Code::TopicNotFound);
        let e: BrokerError = MetaError::Name(names::check_topic("a/b").unwrap_err()).into();
        assert_eq!(e.code(), Code::IllegalTopic);
        let e: BrokerError = MetaError::Name(names::check_group("").unwrap_err()).into();
        assert_eq!(e.code(), Code::IllegalConsumerGroup);
        assert_eq!(e.status().code, 40003);
    }
}
