//! Broker errors as Remoting responses: the one mapping from the core's reasons to 4.x response
//! codes, with the error's text as the remark.

use super::codec::Command;
use super::codes::response as rc;
use crate::error::BrokerError;
use crate::error::Reason;

/// The 4.x response code for `e`. The Java producer retries another broker on SYSTEM_ERROR,
/// SERVICE_NOT_AVAILABLE, TOPIC_NOT_EXIST and NO_PERMISSION, and backs off on SYSTEM_BUSY.
pub fn code(e: &BrokerError) -> i32 {
    match e.code() {
        Reason::TopicNotFound => rc::TOPIC_NOT_EXIST,
        Reason::ConsumerGroupNotFound => rc::SUBSCRIPTION_GROUP_NOT_EXIST,
        Reason::IllegalFilterExpression => rc::SUBSCRIPTION_PARSE_FAILED,
        Reason::Forbidden => rc::NO_PERMISSION,
        Reason::OffsetNotFound | Reason::MessageNotFound => rc::QUERY_NOT_FOUND,
        Reason::TooManyRequests => rc::SYSTEM_BUSY,
        Reason::Unavailable => rc::SERVICE_NOT_AVAILABLE,
        Reason::Internal => rc::SYSTEM_ERROR,
        Reason::IllegalMessageTag
        | Reason::IllegalMessageKey
        | Reason::IllegalMessageGroup
        | Reason::IllegalMessageId
        | Reason::IllegalDeliveryTime
        | Reason::MessageBodyEmpty
        | Reason::MessageBodyTooLarge
        | Reason::MessagePropertiesTooLarge
        | Reason::MessagePropertyConflictWithType
        | Reason::IllegalTopic => rc::MESSAGE_ILLEGAL,
        Reason::BadRequest
        | Reason::IllegalConsumerGroup
        | Reason::IllegalInvisibleTime
        | Reason::IllegalOffset
        | Reason::ClientIdRequired
        | Reason::UnrecognizedClientType
        | Reason::InvalidReceiptHandle
        | Reason::InvalidTransactionId => rc::SYSTEM_ERROR,
    }
}

/// The response to `req` reporting `e`.
pub fn error(req: &Command, e: &BrokerError) -> Command {
    req.response(code(e), Some(e.to_string()))
}

/// The response to `req`: what `res` holds, or its error.
pub fn answer(req: &Command, res: Result<Command, BrokerError>) -> Command {
    res.unwrap_or_else(|e| error(req, &e))
}

/// A SUCCESS response to `req`.
pub fn ok(req: &Command) -> Command {
    req.response(rc::SUCCESS, None)
}
