//! The syntax tree of an SQL92 filter and its evaluation against one message's properties.
//!
//! Evaluation follows RocketMQ's rules: SQL's three-valued logic (a missing property is NULL, and
//! a comparison with NULL is NULL); `>`, `>=`, `<`, `<=` and `BETWEEN` compare numbers only, and
//! a property (always a string on the wire) counts as a number when it parses as the type of the
//! other side: `price > 30` needs an integer `price`, `price > 30.0` any number. A failed
//! conversion is an evaluation error. Only a result of TRUE delivers the message: FALSE, NULL and
//! errors all filter it out.

/// A value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'`
    Str(String),
    /// An integer.
    Long(i64),
    /// A decimal.
    Double(f64),
    /// `TRUE` / `FALSE`
    Bool(bool),
    /// `NULL`
    Null,
}

/// What a comparison compares: a message property or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A property by name (`TAGS` is the message's tag).
    Prop(String),
    /// A literal.
    Lit(Literal),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// String tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    /// `CONTAINS`
    Contains,
    /// `STARTSWITH`
    StartsWith,
    /// `ENDSWITH`
    EndsWith,
}

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All true (n-ary, so long chains stay shallow).
    And(Vec<Expr>),
    /// Any true.
    Or(Vec<Expr>),
    /// `NOT x`
    Not(Box<Expr>),
    /// `TRUE` or `FALSE`.
    Const(bool),
    /// `a op b`
    Cmp(Operand, CmpOp, Operand),
    /// `a [NOT] BETWEEN low AND high`
    Between { value: Operand, low: Operand, high: Operand, negated: bool },
    /// `a [NOT] IN ('x', 'y')`
    In { value: Operand, set: Vec<String>, negated: bool },
    /// `a [NOT] CONTAINS|STARTSWITH|ENDSWITH 'x'`
    Str { value: Operand, op: StrOp, pattern: String, negated: bool },
    /// `a IS [NOT] NULL`
    IsNull { value: Operand, negated: bool },
}

/// Evaluation failed (a value of the wrong type); the message is filtered out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalError;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum Value<'a> {
    Str(&'a str),
    Long(i64),
    Double(f64),
    Bool(bool),
    Null,
}

/// Two numbers brought to one type.
enum Pair {
    Long(i64, i64),
    Double(f64, f64),
}

impl Expr {
    /// Whether the message with these properties passes: only TRUE does.
    pub fn accepts<'a>(&self, props: &impl Fn(&str) -> Option<&'a str>) -> bool {
        matches!(self.eval(props), Ok(Some(true)))
    }

    /// TRUE, FALSE or NULL (`None`), or an error.
    pub fn eval<'a>(&self, props: &impl Fn(&str) -> Option<&'a str>) -> Result<Option<bool>, EvalError> {
        Ok(match self {
            Expr::Const(b) => Some(*b),
            Expr::And(xs) => {
                let mut null = false;
                for x in xs {
                    match x.eval(props)? {
                        Some(false) => return Ok(Some(false)),
                        None => null = true,
                        Some(true) => {}
                    }
                }
                if null { None } else { Some(true) }
            }
            Expr::Or(xs) => {
                let mut null = false;
                for x in xs {
                    match x.eval(props)? {
                        Some(true) => return Ok(Some(true)),
                        None => null = true,
                        Some(false) => {}
                    }
                }
                if null { None } else { Some(false) }
            }
            Expr::Not(x) => x.eval(props)?.map(|b| !b),
            Expr::IsNull { value, negated } => Some(matches!(value.get(props), Value::Null) != *negated),
            Expr::Cmp(l, op, r) => compare(&l.get(props), *op, &r.get(props))?,
            Expr::Between { value, low, high, negated } => {
                // `value >= low AND value <= high`, with AND's three-valued short circuit.
                let v = value.get(props);
                let inside = match compare(&v, CmpOp::Ge, &low.get(props))? {
                    Some(false) => Some(false),
                    ge => match (ge, compare(&v, CmpOp::Le, &high.get(props))?) {
                        (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                };
                inside.map(|b| b != *negated)
            }
            Expr::In { value, set, negated } => match value.get(props) {
                Value::Null => None,
                Value::Str(s) => Some(set.iter().any(|x| x == s) != *negated),
                _ => return Err(EvalError),
            },
            Expr::Str { value, op, pattern, negated } => match value.get(props) {
                Value::Null => None,
                Value::Str(s) => {
                    let hit = match op {
                        StrOp::Contains => s.contains(pattern.as_str()),
                        StrOp::StartsWith => s.starts_with(pattern.as_str()),
                        StrOp::EndsWith => s.ends_with(pattern.as_str()),
                    };
                    Some(hit != *negated)
                }
                _ => return Err(EvalError),
            },
        })
    }
}

impl Operand {
    fn get<'v, 's: 'v, 'p: 'v>(&'s self, props: &impl Fn(&str) -> Option<&'p str>) -> Value<'v> {
        match self {
            Operand::Prop(name) => props(name).map_or(Value::Null, Value::Str),
            Operand::Lit(Literal::Str(s)) => Value::Str(s),
            Operand::Lit(Literal::Long(v)) => Value::Long(*v),
            Operand::Lit(Literal::Double(v)) => Value::Double(*v),
            Operand::Lit(Literal::Bool(v)) => Value::Bool(*v),
            Operand::Lit(Literal::Null) => Value::Null,
        }
    }
}

/// `l op r`: NULL if either side is NULL.
fn compare(l: &Value<'_>, op: CmpOp, r: &Value<'_>) -> Result<Option<bool>, EvalError> {
    if matches!(l, Value::Null) || matches!(r, Value::Null) {
        return Ok(None);
    }
    if matches!(op, CmpOp::Eq | CmpOp::Ne) {
        let eq = match (l, r) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Bool(_), _) | (_, Value::Bool(_)) => false,
            _ => match numbers(l, r)? {
                Pair::Long(a, b) => a == b,
                Pair::Double(a, b) => a == b,
            },
        };
        return Ok(Some(eq == (op == CmpOp::Eq)));
    }
    let ord = match numbers(l, r)? {
        Pair::Long(a, b) => a.partial_cmp(&b),
        Pair::Double(a, b) => a.partial_cmp(&b),
    };
    let Some(ord) = ord else { return Ok(Some(false)) };
    Ok(Some(match op {
        CmpOp::Lt => ord.is_lt(),
        CmpOp::Le => ord.is_le(),
        CmpOp::Gt => ord.is_gt(),
        CmpOp::Ge => ord.is_ge(),
        CmpOp::Eq => ord.is_eq(),
        CmpOp::Ne => ord.is_ne(),
    }))
}

/// Brings two non-null values to one numeric type. A string takes the type of the other side
/// (two strings: integers if both parse as such, else decimals); anything else is an error.
fn numbers(l: &Value<'_>, r: &Value<'_>) -> Result<Pair, EvalError> {
    let long = |s: &str| s.trim().parse::<i64>().map_err(|_| EvalError);
    let double = |s: &str| s.trim().parse::<f64>().map_err(|_| EvalError);
    Ok(match (l, r) {
        (Value::Long(a), Value::Long(b)) => Pair::Long(*a, *b),
        (Value::Long(a), Value::Double(b)) => Pair::Double(*a as f64, *b),
        (Value::Double(a), Value::Long(b)) => Pair::Double(*a, *b as f64),
        (Value::Double(a), Value::Double(b)) => Pair::Double(*a, *b),
        (Value::Str(a), Value::Long(b)) => Pair::Long(long(a)?, *b),
        (Value::Long(a), Value::Str(b)) => Pair::Long(*a, long(b)?),
        (Value::Str(a), Value::Double(b)) => Pair::Double(double(a)?, *b),
        (Value::Double(a), Value::Str(b)) => Pair::Double(*a, double(b)?),
        (Value::Str(a), Value::Str(b)) => match (long(a), long(b)) {
            (Ok(a), Ok(b)) => Pair::Long(a, b),
            _ => Pair::Double(double(a)?, double(b)?),
        },
        _ => return Err(EvalError),
    })
}

/// The canonical text of an expression: parsing it gives the same tree back.
impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |f: &mut std::fmt::Formatter<'_>, xs: &[Expr], op: &str| {
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "({x})")?;
            }
            Ok(())
        };
        let not = |negated: &bool| if *negated { "NOT " } else { "" };
        match self {
            Expr::And(xs) => join(f, xs, "AND"),
            Expr::Or(xs) => join(f, xs, "OR"),
            Expr::Not(x) => write!(f, "NOT ({x})"),
            Expr::Const(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Expr::Cmp(l, op, r) => write!(f, "{l} {op} {r}"),
            Expr::Between { value, low, high, negated } => {
                write!(f, "{value} {}BETWEEN {low} AND {high}", not(negated))
            }
            Expr::In { value, set, negated } => {
                write!(f, "{value} {}IN (", not(negated))?;
                for (i, s) in set.iter().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    write!(f, "{sep}{}", quote(s))?;
                }
                write!(f, ")")
            }
            Expr::Str { value, op, pattern, negated } => {
                let op = match op {
                    StrOp::Contains => "CONTAINS",
                    StrOp::StartsWith => "STARTSWITH",
                    StrOp::EndsWith => "ENDSWITH",
                };
                write!(f, "{value} {}{op} {}", not(negated), quote(pattern))
            }
            Expr::IsNull { value, negated } => write!(f, "{value} IS {}NULL", not(negated)),
        }
    }
}

impl std::fmt::Display for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operand::Prop(p) => write!(f, "{p}"),
            Operand::Lit(Literal::Str(s)) => write!(f, "{}", quote(s)),
            Operand::Lit(Literal::Long(v)) => write!(f, "{v}"),
            Operand::Lit(Literal::Double(v)) => write!(f, "{v:?}"),
            Operand::Lit(Literal::Bool(b)) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Operand::Lit(Literal::Null) => write!(f, "NULL"),
        }
    }
}

impl std::fmt::Display for CmpOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
