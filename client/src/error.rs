//! Errors of the SDK.

use raftmq_proto::rocketmq::Code;

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with a RocketMQ status other than OK.
    #[error("{code:?} ({}): {message}", *code as i32)]
    Status {
        /// The RocketMQ code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The call did not reach the server or did not complete (connection, deadline).
    #[error("transport: {0}")]
    Transport(String),
    /// Not sent at all: the node it was for did not answer lately (see `Routes::avoid`). Safe to
    /// send again elsewhere; nothing was stored.
    #[error("not sent: {0}")]
    NotSent(String),
    /// The server's answer is not what the protocol says.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The caller passed something unusable (an address that does not parse, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// Whether trying again (perhaps on another node or queue) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::NotSent(_) => true,
            ClientError::Status { code, .. } => matches!(
                code,
                Code::HaNotAvailable
                    | Code::TooManyRequests
                    | Code::ProxyTimeout
                    | Code::MasterPersistenceTimeout
                    | Code::SlavePersistenceTimeout
                    | Code::InternalServerError
                    | Code::RequestTimeout
            ),
            _ => false,
        }
    }

    /// The server's hint of when to try again, from a TOO_MANY_REQUESTS answer whose message
    /// ends with `retry after <n> ms` (raftmq's flow control says how long its backlog takes to
    /// drain).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let ClientError::Status { code: Code::TooManyRequests, message } = self else { return None };
        let ms = message.rsplit_once("retry after ")?.1.strip_suffix(" ms")?;
        ms.parse().ok().map(std::time::Duration::from_millis)
    }

    /// The RocketMQ code, if the server answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Transport(format!("{:?}: {}", s.code(), s.message()))
    }
}

/// Turns a response status into `Ok(())` or a [`ClientError::Status`].
pub fn check(status: Option<&raftmq_proto::rocketmq::Status>) -> Result<(), ClientError> {
    let Some(s) = status else {
        return Err(ClientError::BadResponse("response has no status".into()));
    };
    let code = Code::try_from(s.code).unwrap_or(Code::Unspecified);
    match code {
        Code::Ok | Code::MultipleResults => Ok(()),
        _ => Err(ClientError::Status { code, message: s.message.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_from_throttling_answers_only() {
        let e = ClientError::Status {
            code: Code::TooManyRequests,
            message: "the broker group has 64 MiB of writes waiting; retry after 250 ms".into(),
        };
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_millis(250)));
        let e = ClientError::Status { code: Code::TooManyRequests, message: "slow down".into() };
        assert_eq!(e.retry_after(), None, "no hint: the client's own backoff");
        let e = ClientError::Status { code: Code::BadRequest, message: "retry after 5 ms".into() };
        assert_eq!(e.retry_after(), None);
    }
}
