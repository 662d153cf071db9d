//! Server-side message filters of a subscription: tags (`*`, `TagA`, `TagA||TagB`) and SQL92 on
//! message properties.

pub mod expr;
pub mod lexer;
pub mod parser;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::error::Reason;
use raftmq_storage::broker::keys::tag_hash;
use raftmq_storage::broker::record::RecordView;

use self::expr::Expr;
use crate::error::BrokerError;

/// The property name under which SQL92 filters see a message's tag, as in RocketMQ.
pub const TAGS: &str = "TAGS";

/// Which messages a consumer wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every message.
    All,
    /// Messages whose tag is one of these.
    Tags(Vec<String>),
    /// Messages whose properties make this expression TRUE.
    Sql(Arc<Expr>),
}

/// A bad SQL92 expression: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// What is wrong, with the column.
    pub message: String,
}

impl SqlError {
    /// An error at byte `at` of `src`.
    pub fn at(src: &str, at: usize, what: impl Into<String>) -> SqlError {
        let at = at.min(src.len());
        let column = src.get(..at).map_or(at, |s| s.chars().count()) + 1;
        let near: String = src.get(at..).unwrap_or("").chars().take(16).collect();
        let near = if near.is_empty() { "the end".to_string() } else { format!("{near:?}") };
        SqlError { message: format!("{} at column {column} (near {near})", what.into()) }
    }
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
                code: Reason::IllegalFilterExpression,
                message: format!(
                    "tag expression {expr:?} has an empty tag; write TagA||TagB, or * for every message"
                ),
            });
        }
        Ok(Filter::Tags(tags))
    }

    /// Parses an SQL92 expression over message properties.
    pub fn sql(expr: &str) -> Result<Filter, BrokerError> {
        let e = parser::parse(expr).map_err(|e| BrokerError::BadRequest {
            code: Reason::IllegalFilterExpression,
            message: format!("SQL92 filter {expr:?}: {e}"),
        })?;
        Ok(match e {
            Expr::Const(true) => Filter::All,
            e => Filter::Sql(Arc::new(e)),
        })
    }

    /// Whether a message with this tag hash may match (cheap, before reading the message).
    pub fn may_match(&self, hash: u32) -> bool {
        match self {
            Filter::All | Filter::Sql(_) => true,
            Filter::Tags(tags) => tags.iter().any(|t| tag_hash(Some(t)) == hash),
        }
    }

    /// Whether a stored message matches.
    pub fn matches(&self, m: &RecordView<'_>) -> bool {
        match self {
            Filter::All => true,
            Filter::Tags(tags) => m.tag.is_some_and(|t| tags.iter().any(|x| x == t)),
            Filter::Sql(e) => e.accepts(&|name: &str| {
                if name == TAGS {
                    return m.tag;
                }
                m.properties.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
            }),
        }
    }
}
