//! RocketMQ's naming rule for topics and consumer groups, and the prefixes reserved for the system.

/// Longest topic or group name RocketMQ accepts.
pub const NAME_LEN_MAX: usize = 127;

/// Prefixes only the system may use (retry topics, dead-letter topics, system topics).
pub const RESERVED_PREFIXES: [&str; 3] = ["%RETRY%", "%DLQ%", "rmq_sys_"];

/// Why a name was refused; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// No characters at all.
    #[error(
        "{kind} name is empty: use 1-{NAME_LEN_MAX} characters from letters, digits, '_', '-', '%' and '|'"
    )]
    Empty {
        /// `topic` or `consumer group`.
        kind: &'static str,
    },
    /// Over [`NAME_LEN_MAX`] characters.
    #[error("{kind} name has {len} characters; the limit is {NAME_LEN_MAX}")]
    TooLong {
        /// `topic` or `consumer group`.
        kind: &'static str,
        /// Characters given.
        len: usize,
    },
    /// A character outside `[%|a-zA-Z0-9_-]`.
    #[error(
        "{kind} name {name:?} contains {ch:?} at position {pos}; allowed are letters, digits, '_', '-', '%' and '|'"
    )]
    BadChar {
        /// `topic` or `consumer group`.
        kind: &'static str,
        /// The name as given.
        name: String,
        /// The offending character.
        ch: char,
        /// Its character position, from 0.
        pos: usize,
    },
    /// Starts with a system prefix.
    #[error("{kind} name {name:?} starts with the reserved prefix {prefix:?}, which only the system may use")]
    Reserved {
        /// `topic` or `consumer group`.
        kind: &'static str,
        /// The name as given.
        name: String,
        /// The reserved prefix it starts with.
        prefix: &'static str,
    },
}

/// The retry topic of consumer group `group`: messages whose delivery failed wait there for
/// their next attempt.
pub fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

/// Whether `topic` is a consumer group's retry topic.
pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with("%RETRY%")
}

/// The dead-letter topic of consumer group `group`.
pub fn dlq_topic(group: &str) -> String {
    format!("%DLQ%{group}")
}

/// Checks `name` against `^[%|a-zA-Z0-9_-]+$` and the length limit, without the reserved check.
pub fn check_syntax(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    let len = name.chars().count();
    if len > NAME_LEN_MAX {
        return Err(NameError::TooLong { kind, len });
    }
    if let Some((pos, ch)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(NameError::BadChar { kind, name: name.to_string(), ch, pos });
    }
    Ok(())
}

/// Checks a name a user chose: the syntax, and that it does not take a system prefix.
pub fn check_user_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    check_syntax(kind, name)?;
    let lower = name.to_ascii_lowercase();
    for prefix in RESERVED_PREFIXES {
        if lower.starts_with(&prefix.to_ascii_lowercase()) {
            return Err(NameError::Reserved { kind, name: name.to_string(), prefix });
        }
    }
    Ok(())
}

/// Checks a user-chosen topic name.
pub fn check_topic(name: &str) -> Result<(), NameError> {
    check_user_name("topic", name)
}

/// Checks a user-chosen consumer group name.
pub fn check_group(name: &str) -> Result<(), NameError> {
    check_user_name("consumer group", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rocketmq_names() {
        for n in ["TopicTest", "a", "order-events_v2", "a|b", "x%y", &"a".repeat(127)] {
            check_topic(n).unwrap();
        }
    }

    #[test]
    fn rejects_with_a_message_that_says_what_to_fix() {
        assert!(matches!(check_topic(""), Err(NameError::Empty { .. })));
        let e = check_topic(&"a".repeat(128)).unwrap_err();
        assert_eq!(e.to_string(), "topic name has 128 characters; the limit is 127");
        for bad in ["../x", "a b", "a\0b", "tópico", "a.b", "a/b"] {
            let e = check_topic(bad).unwrap_err();
            assert!(matches!(e, NameError::BadChar { .. }), "{bad:?} gave {e}");
            assert!(e.to_string().contains("allowed are letters"), "{e}");
        }
        let e = check_topic("a.b").unwrap_err();
        assert!(e.to_string().contains("'.' at position 1"), "{e}");
    }

    #[test]
    fn reserved_prefixes_are_for_the_system_only() {
        for n in ["%RETRY%g1", "%DLQ%g1", "rmq_sys_trace", "RMQ_SYS_TRACE_TOPIC", "%retry%x"] {
            assert!(matches!(check_group(n), Err(NameError::Reserved { .. })), "{n}");
            check_syntax("topic", n).unwrap();
        }
    }
}
