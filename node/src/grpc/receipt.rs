//! Receipt handles: what a consumer sends back to ack a received message or change its invisible
//! time. Opaque to clients; to us
//! `<version>.<broker group>.<queue>.<offset>.<epoch>.<deadline>.<source>` plus a checksum, so a
//! mangled handle is told apart from a stale one. The source says whether the message was handed
//! out from the consumer group's retry topic (then the queue and offset are the retry queue's).

use raftmq_storage::GroupId;
use raftmq_storage::nameserver::names;

use crate::error::BrokerError;
use crate::error::Reason;

/// Handles without the source field (always the requested topic) are still accepted.
const VERSION_1: &str = "r1";
const VERSION: &str = "r2";

/// A parsed receipt handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptHandle {
    /// Broker group of the message.
    pub group: GroupId,
    /// Queue.
    pub queue: u32,
    /// Queue offset.
    pub offset: u64,
    /// Epoch of the delivery (changes with every redelivery and change of invisible time).
    pub epoch: u32,
    /// When the message becomes visible again, ms since the epoch, as of this handle.
    pub deadline_ms: i64,
    /// Handed out from the consumer group's retry topic, not from the topic the client names.
    pub retry: bool,
}

fn checksum(body: &str) -> String {
    format!("{:08x}", crc32fast::hash(body.as_bytes()))
}

fn invalid(handle: &str, why: &str) -> BrokerError {
    let shown: String = handle.chars().take(80).collect();
    BrokerError::BadRequest {
        code: Reason::InvalidReceiptHandle,
        message: format!(
            "receipt handle {shown:?} is not one this cluster issued ({why}); send it back exactly as received"
        ),
    }
}

impl ReceiptHandle {
    /// The handle's text.
    pub fn encode(&self) -> String {
        let body = format!(
            "{VERSION}.{}.{}.{}.{}.{}.{}",
            self.group.0,
            self.queue,
            self.offset,
            self.epoch,
            self.deadline_ms,
            u8::from(self.retry)
        );
        let sum = checksum(&body);
        format!("{body}.{sum}")
    }

    /// Parses a handle; INVALID_RECEIPT_HANDLE when it is not one of ours.
    pub fn parse(handle: &str) -> Result<ReceiptHandle, BrokerError> {
        if handle.is_empty() {
            return Err(invalid(handle, "it is empty"));
        }
        let (body, sum) = handle.rsplit_once('.').ok_or_else(|| invalid(handle, "no checksum"))?;
        if checksum(body) != sum {
            return Err(invalid(handle, "checksum mismatch"));
        }
        let parts: Vec<&str> = body.split('.').collect();
        let (fields, retry) = match parts.as_slice() {
            [v, rest @ ..] if *v == VERSION_1 && rest.len() == 5 => (rest, false),
            [v, rest @ .., source] if *v == VERSION && rest.len() == 5 => match *source {
                "0" => (rest, false),
                "1" => (rest, true),
                _ => return Err(invalid(handle, "bad source")),
            },
            [v, ..] if *v != VERSION && *v != VERSION_1 => return Err(invalid(handle, "unknown version")),
            _ => return Err(invalid(handle, "wrong number of fields")),
        };
        let [group, queue, offset, epoch, deadline] = fields else {
            return Err(invalid(handle, "wrong number of fields"));
        };
        let num = |s: &str| s.parse::<u64>().map_err(|_| invalid(handle, "a field is not a number"));
        let group = u32::try_from(num(group)?).map_err(|_| invalid(handle, "bad broker group"))?;
        if group == 0 {
            return Err(invalid(handle, "bad broker group"));
        }
        Ok(ReceiptHandle {
            group: GroupId(group),
            queue: u32::try_from(num(queue)?).map_err(|_| invalid(handle, "bad queue"))?,
            offset: num(offset)?,
            epoch: u32::try_from(num(epoch)?).map_err(|_| invalid(handle, "bad epoch"))?,
            deadline_ms: deadline.parse::<i64>().map_err(|_| invalid(handle, "bad deadline"))?,
            retry,
        })
    }

    /// The topic whose pop state holds the message: `topic` as the client names it, or the
    /// consumer group's retry topic.
    pub fn source_topic(&self, group: &str, topic: &str) -> String {
        if self.retry { names::retry_topic(group) } else { topic.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_reject_tampering() {
        let h = ReceiptHandle {
            group: GroupId(2),
            queue: 3,
            offset: 99,
            epoch: 4,
            deadline_ms: 1_700_000_000_000,
            retry: false,
        };
        let text = h.encode();
        assert_eq!(ReceiptHandle::parse(&text).unwrap(), h);
        let r = ReceiptHandle { retry: true, ..h };
        assert_eq!(ReceiptHandle::parse(&r.encode()).unwrap(), r);
        assert_eq!(r.source_topic("g", "t"), "%RETRY%g");
        // A handle of the first version still parses.
        let body = "r1.2.3.99.4.1700000000000";
        let old = format!("{body}.{}", checksum(body));
        assert_eq!(ReceiptHandle::parse(&old).unwrap(), h);
        let tampered = text.replacen(".99.", ".98.", 1);
        let e = ReceiptHandle::parse(&tampered).unwrap_err();
        assert_eq!(e.code(), Reason::InvalidReceiptHandle);
        for bad in ["", "x", "r1.1.2.3", "r2.1.0.0.1.5.00000000", "garbage.with.dots"] {
            assert_eq!(ReceiptHandle::parse(bad).unwrap_err().code(), Reason::InvalidReceiptHandle, "{bad}");
        }
    }
}
