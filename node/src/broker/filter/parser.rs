//! Recursive-descent parser of SQL92 filter expressions.
//!
//! ```text
//! or      := and (OR and)*
//! and     := not (AND not)*
//! not     := NOT not | primary
//! primary := '(' or ')' | TRUE | FALSE | operand test
//! test    := cmp operand | [NOT] BETWEEN operand AND operand | [NOT] IN '(' string (',' string)* ')'
//!          | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string | IS [NOT] NULL
//! operand := property | string | [+|-] number | TRUE | FALSE
//! ```
//!
//! Checks that RocketMQ makes at subscribe time happen here: `>`, `>=`, `<`, `<=` and `BETWEEN`
//! take numbers, not string or boolean literals; `IN` takes strings. Comparisons do not chain.
//! Nesting (parentheses and `NOT`) is limited to [`DEPTH_MAX`], so hostile input cannot
//! overflow the stack.

use super::SqlError;
use super::expr::CmpOp;
use super::expr::Expr;
use super::expr::Literal;
use super::expr::Operand;
use super::expr::StrOp;
use super::lexer::Keyword;
use super::lexer::Kind;
use super::lexer::Token;
use super::lexer::tokenize;

/// The longest expression accepted, bytes.
pub const LEN_MAX: usize = 8192;
/// The deepest nesting of parentheses and `NOT` accepted.
pub const DEPTH_MAX: usize = 32;

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr, SqlError> {
    if src.len() > LEN_MAX {
        return Err(SqlError {
            message: format!("expression is {} bytes; the limit is {LEN_MAX}", src.len()),
        });
    }
    if src.trim().is_empty() {
        return Err(SqlError { message: "expression is empty; write TRUE to receive every message".into() });
    }
    let mut p = Parser { src, tokens: tokenize(src)?, pos: 0, depth: 0 };
    let e = p.or()?;
    match p.peek() {
        Kind::End => Ok(e),
        _ => Err(p.error("expected AND, OR or the end of the expression")),
    }
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Kind {
        // `tokenize` always ends with `End`, and nothing advances past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)].kind
    }

    fn peek2(&self) -> &Kind {
        &self.tokens[(self.pos + 1).min(self.tokens.len() - 1)].kind
    }

    /// The current token; always advances (past the end `peek` keeps answering `End`), so an
    /// error branch can step back with `pos -= 1`.
    fn next(&mut self) -> Kind {
        let k = self.peek().clone();
        self.pos += 1;
        k
    }

    fn eat(&mut self, k: Keyword) -> bool {
        if *self.peek() == Kind::Keyword(k) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn error(&self, what: &str) -> SqlError {
        let t = &self.tokens[self.pos.min(self.tokens.len() - 1)];
        SqlError::at(self.src, t.at, what.to_string())
    }

    fn deeper(&mut self) -> Result<(), SqlError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(self.error(&format!("nested more than {DEPTH_MAX} levels deep")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, SqlError> {
        let mut xs = vec![self.and()?];
        while self.eat(Keyword::Or) {
            xs.push(self.and()?);
        }
        Ok(if xs.len() == 1 { xs.remove(0) } else { Expr::Or(xs) })
    }

    fn and(&mut self) -> Result<Expr, SqlError> {
        let mut xs = vec![self.not()?];
        while self.eat(Keyword::And) {
            xs.push(self.not()?);
        }
        Ok(if xs.len() == 1 { xs.remove(0) } else { Expr::And(xs) })
    }

    fn not(&mut self) -> Result<Expr, SqlError> {
        if self.eat(Keyword::Not) {
            self.deeper()?;
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SqlError> {
        if *self.peek() == Kind::Open {
            self.pos += 1;
            self.deeper()?;
            let e = self.or()?;
            self.depth -= 1;
            if self.next() != Kind::Close {
                self.pos -= 1;
                return Err(self.error("expected ')'"));
            }
            if matches!(self.peek(), Kind::Cmp(_)) {
                return Err(self.error("a condition in parentheses cannot be compared; compare a property"));
            }
            return Ok(e);
        }
        // A lone TRUE / FALSE is a condition.
        if let Kind::Keyword(k @ (Keyword::True | Keyword::False)) = *self.peek()
            && !matches!(self.peek2(), Kind::Cmp(_))
        {
            self.pos += 1;
            return Ok(Expr::Const(k == Keyword::True));
        }
        let start = self.pos;
        let value = self.operand()?;
        self.test(value, start)
    }

    /// The test applied to `value` (which started at token `start`).
    fn test(&mut self, value: Operand, start: usize) -> Result<Expr, SqlError> {
        if let Kind::Cmp(op) = *self.peek() {
            self.pos += 1;
            let op = match op {
                "=" => CmpOp::Eq,
                "<>" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            };
            let at = self.pos;
            let right = self.operand()?;
            for (o, at) in [(&value, start), (&right, at)] {
                self.check_operand(o, op, at)?;
            }
            if matches!(self.peek(), Kind::Cmp(_)) {
                return Err(self.error("comparisons do not chain; join them with AND"));
            }
            return Ok(Expr::Cmp(value, op, right));
        }
        if self.eat(Keyword::Is) {
            let negated = self.eat(Keyword::Not);
            if !self.eat(Keyword::Null) {
                return Err(self.error("expected NULL after IS / IS NOT"));
            }
            return Ok(Expr::IsNull { value, negated });
        }
        let negated = self.eat(Keyword::Not);
        match self.next() {
            Kind::Keyword(Keyword::Between) => {
                self.check_number(&value, start)?;
                let at = self.pos;
                let low = self.operand()?;
                self.check_number(&low, at)?;
                if !self.eat(Keyword::And) {
                    return Err(self.error("expected AND in BETWEEN low AND high"));
                }
                let at = self.pos;
                let high = self.operand()?;
                self.check_number(&high, at)?;
                Ok(Expr::Between { value, low, high, negated })
            }
            Kind::Keyword(Keyword::In) => {
                if self.next() != Kind::Open {
                    self.pos -= 1;
                    return Err(self.error("expected '(' after IN"));
                }
                let mut set = Vec::new();
                loop {
                    match self.next() {
                        Kind::Str(s) => set.push(s),
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("IN takes a list of strings, like IN ('a', 'b')"));
                        }
                    }
                    match self.next() {
                        Kind::Comma => {}
                        Kind::Close => break,
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("expected ',' or ')' in the IN list"));
                        }
                    }
                }
                Ok(Expr::In { value, set, negated })
            }
            Kind::Keyword(k @ (Keyword::Contains | Keyword::StartsWith | Keyword::EndsWith)) => {
                let op = match k {
                    Keyword::Contains => StrOp::Contains,
                    Keyword::StartsWith => StrOp::StartsWith,
                    _ => StrOp::EndsWith,
                };
                match self.next() {
                    Kind::Str(pattern) => Ok(Expr::Str { value, op, pattern, negated }),
                    _ => {
                        self.pos -= 1;
                        Err(self.error("CONTAINS, STARTSWITH and ENDSWITH take a string"))
                    }
                }
            }
            Kind::Keyword(Keyword::Like) => {
                self.pos -= 1;
                Err(self.error("LIKE is not supported; use CONTAINS, STARTSWITH or ENDSWITH"))
            }
            _ => {
                self.pos -= 1;
                Err(self.error(
                    "expected a test: =, <>, <, <=, >, >=, BETWEEN, IN, CONTAINS, STARTSWITH, ENDSWITH or IS NULL",
                ))
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, SqlError> {
        let sign = match self.peek() {
            Kind::Minus => -1,
            Kind::Plus => 1,
            _ => 0,
        };
        if sign != 0 {
            self.pos += 1;
        }
        let at = self.pos;
        let lit = match self.next() {
            Kind::Ident(name) if sign == 0 => return Ok(Operand::Prop(name)),
            Kind::Str(s) if sign == 0 => Literal::Str(s),
            Kind::Keyword(Keyword::True) if sign == 0 => Literal::Bool(true),
            Kind::Keyword(Keyword::False) if sign == 0 => Literal::Bool(false),
            Kind::Keyword(Keyword::Null) if sign == 0 => Literal::Null,
            Kind::Int(v) => {
                let v = i128::from(v) * i128::from(if sign < 0 { -1 } else { 1 });
                match i64::try_from(v) {
                    Ok(v) => Literal::Long(v),
                    Err(_) => {
                        self.pos = at;
                        return Err(self.error("integer is out of range"));
                    }
                }
            }
            Kind::Float(v) => Literal::Double(if sign < 0 { -v } else { v }),
            _ => {
                self.pos = at;
                return Err(self.error(if sign == 0 {
                    "expected a property name, a string or a number"
                } else {
                    "expected a number after the sign"
                }));
            }
        };
        Ok(Operand::Lit(lit))
    }

    /// Literals a comparison `op` cannot take.
    fn check_operand(&self, o: &Operand, op: CmpOp, at: usize) -> Result<(), SqlError> {
        match (o, op) {
            (Operand::Lit(Literal::Null), _) => {
                Err(self.error_at(at, "NULL cannot be compared; use IS NULL or IS NOT NULL"))
            }
            (_, CmpOp::Eq | CmpOp::Ne) => Ok(()),
            _ => self.check_number(o, at),
        }
    }

    fn check_number(&self, o: &Operand, at: usize) -> Result<(), SqlError> {
        match o {
            Operand::Lit(Literal::Str(_) | Literal::Bool(_) | Literal::Null) => {
                Err(self.error_at(at, ">, >=, <, <= and BETWEEN compare numbers; this is not a number"))
            }
            _ => Ok(()),
        }
    }

    fn error_at(&self, token: usize, what: &str) -> SqlError {
        let t = &self.tokens[token.min(self.tokens.len() - 1)];
        SqlError::at(self.src, t.at, what.to_string())
    }
}
