//! Receipt handles: what a consumer sends back to ack a received message or change its invisible
//! time. Opaque to clients; to us `<version>.<broker group>.<queue>.<offset>.<epoch>.<deadline>`
//! plus a checksum, so a mangled handle is told apart from a stale one.

use raftmq_proto::rocketmq::Code;
use raftmq_storage::GroupId;

use crate::error::BrokerError;

const VERSION: &str = "r1";

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
}

fn checksum(body: &str) -> String {
    format!("{:08x}", crc32fast::hash(body.as_bytes()))
}

fn invalid(handle: &str, why: &str) -> BrokerError {
    let shown: String = handle.chars().take(80).collect();
    BrokerError::BadRequest {
        code: Code::InvalidReceiptHandle,
        message: format!(
            "receipt handle {shown:?} is not one this cluster issued ({why}); send it back exactly as received"
        ),
    }
}

impl ReceiptHandle {
    /// The handle's text.
    pub fn encode(&self) -> String {
        let body = format!(
            "{VERSION}.{}.{}.{}.{}.{}",
            self.group.0, self.queue, self.offset, self.epoch, self.deadline_ms
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
        let [version, group, queue, offset, epoch, deadline] = parts.as_slice() else {
            return Err(invalid(handle, "wrong number of fields"));
        };
        if *version != VERSION {
            return Err(invalid(handle, "unknown version"));
        }
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
        })
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
        };
        let text = h.encode();
        assert_eq!(ReceiptHandle::parse(&text).unwrap(), h);
        let tampered = text.replacen(".99.", ".98.", 1);
        let e = ReceiptHandle::parse(&tampered).unwrap_err();
        assert_eq!(e.code(), Code::InvalidReceiptHandle);
        for bad in ["", "x", "r1.1.2.3", "r2.1.0.0.1.5.00000000", "garbage.with.dots"] {
            assert_eq!(ReceiptHandle::parse(bad).unwrap_err().code(), Code::InvalidReceiptHandle, "{bad}");
        }
    }
}
