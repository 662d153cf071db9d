//! Tokens of an SQL92 filter expression.
//!
//! Keywords are case-insensitive, strings are single-quoted with `''` for a quote, numbers are
//! integers (decimal, `0x` hex, `L` suffix allowed) or decimals with an optional exponent.

use super::SqlError;

/// One token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Byte offset in the expression, for error messages.
    pub at: usize,
}

/// Token kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A property name.
    Ident(String),
    /// A string literal, quotes removed.
    Str(String),
    /// An integer literal (unsigned; the parser applies a sign).
    Int(u64),
    /// A decimal literal.
    Float(f64),
    /// A keyword, upper-cased.
    Keyword(Keyword),
    /// `(`
    Open,
    /// `)`
    Close,
    /// `,`
    Comma,
    /// `=`, `<>`, `<`, `<=`, `>`, `>=`
    Cmp(&'static str),
    /// `-`
    Minus,
    /// `+`
    Plus,
    /// End of input.
    End,
}

/// Reserved words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    And,
    Or,
    Not,
    Between,
    In,
    Is,
    Null,
    True,
    False,
    Contains,
    StartsWith,
    EndsWith,
    Like,
    Escape,
}

impl Keyword {
    fn of(word: &str) -> Option<Keyword> {
        Some(match word.to_ascii_uppercase().as_str() {
            "AND" => Keyword::And,
            "OR" => Keyword::Or,
            "NOT" => Keyword::Not,
            "BETWEEN" => Keyword::Between,
            "IN" => Keyword::In,
            "IS" => Keyword::Is,
            "NULL" => Keyword::Null,
            "TRUE" => Keyword::True,
            "FALSE" => Keyword::False,
            "CONTAINS" => Keyword::Contains,
            "STARTSWITH" => Keyword::StartsWith,
            "ENDSWITH" => Keyword::EndsWith,
            "LIKE" => Keyword::Like,
            "ESCAPE" => Keyword::Escape,
            _ => return None,
        })
    }
}

/// Splits an expression into tokens, ending with [`Kind::End`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, SqlError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let at = i;
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
            continue;
        }
        // Every arm gives the token and the offset after it.
        let (kind, end) = match c {
            b'(' => (Kind::Open, i + 1),
            b')' => (Kind::Close, i + 1),
            b',' => (Kind::Comma, i + 1),
            b'-' => (Kind::Minus, i + 1),
            b'+' => (Kind::Plus, i + 1),
            b'=' => (Kind::Cmp("="), i + 1),
            b'<' | b'>' => match (c, b.get(i + 1).copied()) {
                (b'<', Some(b'>')) => (Kind::Cmp("<>"), i + 2),
                (b'<', Some(b'=')) => (Kind::Cmp("<="), i + 2),
                (b'>', Some(b'=')) => (Kind::Cmp(">="), i + 2),
                (b'<', _) => (Kind::Cmp("<"), i + 1),
                _ => (Kind::Cmp(">"), i + 1),
            },
            b'\'' => {
                let (s, end) = string(src, i)?;
                (Kind::Str(s), end)
            }
            b'0'..=b'9' | b'.' => number(src, i)?,
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let end = b[i..]
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'))
                    .map_or(b.len(), |n| i + n);
                let word = &src[i..end];
                let kind = match Keyword::of(word) {
                    Some(k) => Kind::Keyword(k),
                    None => Kind::Ident(word.to_string()),
                };
                (kind, end)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(SqlError::at(src, at, format!("unexpected character {ch:?}")));
            }
        };
        i = end;
        out.push(Token { kind, at });
    }
    out.push(Token { kind: Kind::End, at: src.len() });
    Ok(out)
}

/// A quoted string starting at `start`; returns its text and the offset after the closing quote.
fn string(src: &str, start: usize) -> Result<(String, usize), SqlError> {
    let b = src.as_bytes();
    let mut s = String::new();
    let mut i = start + 1;
    let mut from = i;
    loop {
        match b.get(i) {
            None => return Err(SqlError::at(src, start, "string is not closed; end it with '")),
            Some(b'\'') if b.get(i + 1) == Some(&b'\'') => {
                s.push_str(&src[from..=i]);
                i += 2;
                from = i;
            }
            Some(b'\'') => {
                s.push_str(&src[from..i]);
                return Ok((s, i + 1));
            }
            Some(_) => i += 1,
        }
    }
}

/// A number starting at `start`; returns it and the offset after it.
fn number(src: &str, start: usize) -> Result<(Kind, usize), SqlError> {
    let b = src.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let bad = |what: &str| SqlError::at(src, start, what.to_string());
    if b[start] == b'0' && matches!(b.get(start + 1), Some(b'x' | b'X')) {
        let n = b[start + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let end = start + 2 + n;
        let v = u64::from_str_radix(&src[start + 2..end], 16)
            .map_err(|_| bad("hex number is empty or too large"))?;
        return Ok((Kind::Int(v), suffix(b, end, b"lL")));
    }
    let mut end = start + digits(start);
    let mut float = false;
    if b.get(end) == Some(&b'.') {
        float = true;
        end += 1 + digits(end + 1);
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(b.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        let n = digits(e);
        if n == 0 {
            return Err(bad("exponent has no digits"));
        }
        float = true;
        end = e + n;
    }
    let text = &src[start..end];
    if float {
        if text == "." || text.starts_with(".e") || text.starts_with(".E") {
            return Err(bad("a number needs digits"));
        }
        let v: f64 = text.parse().map_err(|_| bad("not a number"))?;
        return Ok((Kind::Float(v), suffix(b, end, b"dDfF")));
    }
    let v: u64 = text.parse().map_err(|_| bad("integer is too large (the limit is 9223372036854775807)"))?;
    Ok((Kind::Int(v), suffix(b, end, b"lL")))
}

fn suffix(b: &[u8], end: usize, allowed: &[u8]) -> usize {
    match b.get(end) {
        Some(c) if allowed.contains(c) => end + 1,
        _ => end,
    }
}
