//! Server-side message filters of a subscription. Tags for now (`*`, `TagA`, `TagA||TagB`).

use raftmq_storage::broker::keys::tag_hash;

use crate::error::BrokerError;

/// Which messages a consumer wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every message.
    All,
    /// Messages whose tag is one of these.
    Tags(Vec<String>),
}

impl Filter {
    /// Parses a tag expression: `*` (or empty) for all, else tags separated by `||`.
    pub fn tags(expr: &str) -> Result<Filter, BrokerError> {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(Filter::All);
        }
        let tags: Vec<String> = expr.split("||").map(|t| t.trim().to_string()).collect();
        if tags.iter().any(String::is_empty) {
            return Err(BrokerError::BadRequest {
                code: raftmq_proto::rocketmq::Code::IllegalFilterExpression,
                message: format!(
                    "tag expression {expr:?} has an empty tag; write TagA||TagB, or * for every message"
                ),
            });
        }
        Ok(Filter::Tags(tags))
    }

    /// Whether a message with this tag hash may match (cheap, before reading the message).
    pub fn may_match(&self, hash: u32) -> bool {
        match self {
            Filter::All => true,
            Filter::Tags(tags) => tags.iter().any(|t| tag_hash(Some(t)) == hash),
        }
    }

    /// Whether a message with this tag matches.
    pub fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            Filter::All => true,
            Filter::Tags(tags) => tag.is_some_and(|t| tags.iter().any(|x| x == t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions() {
        assert_eq!(Filter::tags("*").unwrap(), Filter::All);
        assert_eq!(Filter::tags("").unwrap(), Filter::All);
        let f = Filter::tags("TagA || TagB").unwrap();
        assert!(f.matches(Some("TagB")));
        assert!(!f.matches(Some("TagC")));
        assert!(!f.matches(None));
        assert!(f.may_match(tag_hash(Some("TagA"))));
        assert!(!f.may_match(0));
        assert!(Filter::tags("a||").is_err());
    }
}
