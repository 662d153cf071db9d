//! The one mapping from [`BrokerError`] (and its [`Reason`]) to an `apache.rocketmq.v2.Status`,
//! for the MessagingService and the admin service.

use raftmq_proto::rocketmq::Code;
use raftmq_proto::rocketmq::Status;

use crate::error::BrokerError;
use crate::error::Reason;

/// The RocketMQ 5 code of a reason.
pub fn code(r: Reason) -> Code {
    match r {
        Reason::BadRequest => Code::BadRequest,
        Reason::IllegalTopic => Code::IllegalTopic,
        Reason::IllegalConsumerGroup => Code::IllegalConsumerGroup,
        Reason::IllegalMessageTag => Code::IllegalMessageTag,
        Reason::IllegalMessageKey => Code::IllegalMessageKey,
        Reason::IllegalMessageGroup => Code::IllegalMessageGroup,
        Reason::IllegalMessageId => Code::IllegalMessageId,
        Reason::IllegalDeliveryTime => Code::IllegalDeliveryTime,
        Reason::IllegalInvisibleTime => Code::IllegalInvisibleTime,
        Reason::IllegalFilterExpression => Code::IllegalFilterExpression,
        Reason::IllegalOffset => Code::IllegalOffset,
        Reason::ClientIdRequired => Code::ClientIdRequired,
        Reason::UnrecognizedClientType => Code::UnrecognizedClientType,
        Reason::MessageBodyEmpty => Code::MessageBodyEmpty,
        Reason::MessageBodyTooLarge => Code::MessageBodyTooLarge,
        Reason::MessagePropertiesTooLarge => Code::MessagePropertiesTooLarge,
        Reason::MessagePropertyConflictWithType => Code::MessagePropertyConflictWithType,
        Reason::InvalidReceiptHandle => Code::InvalidReceiptHandle,
        Reason::InvalidTransactionId => Code::InvalidTransactionId,
        Reason::Forbidden => Code::Forbidden,
        Reason::TopicNotFound => Code::TopicNotFound,
        Reason::ConsumerGroupNotFound => Code::ConsumerGroupNotFound,
        Reason::OffsetNotFound => Code::OffsetNotFound,
        Reason::MessageNotFound => Code::MessageNotFound,
        Reason::TooManyRequests => Code::TooManyRequests,
        Reason::Unavailable => Code::HaNotAvailable,
        Reason::Internal => Code::InternalServerError,
    }
}

/// The reason a RocketMQ 5 code stands for (a leader's refusal of a forwarded request passed on).
pub fn reason(c: Code) -> Reason {
    [
        Reason::BadRequest,
        Reason::IllegalTopic,
        Reason::IllegalConsumerGroup,
        Reason::IllegalMessageTag,
        Reason::IllegalMessageKey,
        Reason::IllegalMessageGroup,
        Reason::IllegalMessageId,
        Reason::IllegalDeliveryTime,
        Reason::IllegalInvisibleTime,
        Reason::IllegalFilterExpression,
        Reason::IllegalOffset,
        Reason::ClientIdRequired,
        Reason::UnrecognizedClientType,
        Reason::MessageBodyEmpty,
        Reason::MessageBodyTooLarge,
        Reason::MessagePropertiesTooLarge,
        Reason::MessagePropertyConflictWithType,
        Reason::InvalidReceiptHandle,
        Reason::InvalidTransactionId,
        Reason::Forbidden,
        Reason::TopicNotFound,
        Reason::ConsumerGroupNotFound,
        Reason::OffsetNotFound,
        Reason::MessageNotFound,
        Reason::TooManyRequests,
        Reason::Unavailable,
    ]
    .into_iter()
    .find(|r| code(*r) == c)
    .unwrap_or(Reason::Internal)
}

/// The status to put in a response body.
pub fn status(e: &BrokerError) -> Status {
    Status { code: code(e.code()) as i32, message: e.to_string() }
}

/// The status answering a request that `res` settled; a refusal is logged (debug) as `what`.
pub fn outcome_status(res: Result<(), BrokerError>, what: &str) -> Status {
    match res {
        Ok(()) => ok_status(),
        Err(e) => {
            tracing::debug!(error = %e, request = what, "request refused");
            status(&e)
        }
    }
}

/// The OK status.
pub fn ok_status() -> Status {
    Status { code: Code::Ok as i32, message: "OK".to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_follow_rocketmq() {
        for r in [Reason::IllegalTopic, Reason::TooManyRequests, Reason::Unavailable, Reason::OffsetNotFound]
        {
            assert_eq!(reason(code(r)), r);
        }
        assert_eq!(code(Reason::IllegalConsumerGroup) as i32, 40003);
        assert_eq!(reason(Code::InternalError), Reason::Internal);
    }
}
