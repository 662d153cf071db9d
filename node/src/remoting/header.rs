//! Reading a request's custom header (`extFields`): named fields, with the clients' aliases
//! (SEND_MESSAGE_V2's one-letter names), checked into typed values with errors that name the
//! field.

use super::codec::Command;
use crate::error::BrokerError;

/// SEND_MESSAGE_V2's one-letter names and the SEND_MESSAGE names they stand for.
const SEND_V2_NAMES: [(&str, &str); 14] = [
    ("a", "producerGroup"),
    ("b", "topic"),
    ("c", "defaultTopic"),
    ("d", "defaultTopicQueueNums"),
    ("e", "queueId"),
    ("f", "sysFlag"),
    ("g", "bornTimestamp"),
    ("h", "flag"),
    ("i", "properties"),
    ("j", "reconsumeTimes"),
    ("k", "unitMode"),
    ("l", "maxReconsumeTimes"),
    ("m", "batch"),
    ("n", "bname"),
];

/// The header of one request, read by name.
pub struct Header<'a> {
    cmd: &'a Command,
    /// Whether the one-letter names of SEND_MESSAGE_V2 apply.
    short: bool,
}

impl<'a> Header<'a> {
    /// The header of `cmd`; `short`: fields may come by their SEND_MESSAGE_V2 letters.
    pub fn of(cmd: &'a Command, short: bool) -> Self {
        Header { cmd, short }
    }

    /// A field, if present and not empty.
    pub fn opt(&self, name: &str) -> Option<&'a str> {
        let direct = self.cmd.ext.get(name);
        let aliased = || {
            self.short
                .then(|| SEND_V2_NAMES.iter().find(|(_, long)| *long == name))
                .flatten()
                .and_then(|(letter, _)| self.cmd.ext.get(*letter))
        };
        direct.or_else(aliased).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A required field.
    pub fn str(&self, name: &str) -> Result<&'a str, BrokerError> {
        self.opt(name).ok_or_else(|| BrokerError::bad_request(format!("header field {name} is missing")))
    }

    /// A required integer field.
    pub fn i64(&self, name: &str) -> Result<i64, BrokerError> {
        let v = self.str(name)?;
        v.trim()
            .parse()
            .map_err(|_| BrokerError::bad_request(format!("header field {name} is {v:?}, not an integer")))
    }

    /// A required 32-bit integer field.
    pub fn i32(&self, name: &str) -> Result<i32, BrokerError> {
        let v = self.i64(name)?;
        i32::try_from(v)
            .map_err(|_| BrokerError::bad_request(format!("header field {name} is {v}, out of range")))
    }

    /// An optional integer field (absent: `None`; present and not a number: an error).
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, BrokerError> {
        match self.opt(name) {
            None => Ok(None),
            Some(_) => self.i64(name).map(Some),
        }
    }

    /// An optional boolean field (`true`/`false`, any case; absent: false).
    pub fn flag(&self, name: &str) -> bool {
        self.opt(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_by_name_by_letter_and_typed() {
        let cmd = Command::request(310, 1)
            .with("b", "orders")
            .with("e", "3")
            .with("g", "x1")
            .with("m", "TRUE")
            .with("empty", "");
        let h = Header::of(&cmd, true);
        assert_eq!(h.str("topic").unwrap(), "orders");
        assert_eq!(h.i32("queueId").unwrap(), 3);
        assert!(h.flag("batch"));
        assert!(h.i64("bornTimestamp").unwrap_err().to_string().contains("bornTimestamp"));
        assert!(h.str("empty").is_err(), "an empty field is missing");
        assert_eq!(h.opt_i64("reconsumeTimes").unwrap(), None);
        let long = Header::of(&cmd, false);
        assert!(long.opt("topic").is_none(), "letters only for SEND_MESSAGE_V2");
        let big = Command::request(11, 1).with("queueId", "99999999999");
        assert!(Header::of(&big, false).i32("queueId").is_err());
    }
}
