//! Filter tests: the rules of RocketMQ's SQL92 table, hostile input, and property-based checks
//! of parser and evaluator.

use proptest::prelude::*;

use super::expr::CmpOp;
use super::expr::Expr;
use super::expr::Literal;
use super::expr::Operand;
use super::expr::StrOp;
use super::parser::DEPTH_MAX;
use super::parser::LEN_MAX;
use super::parser::parse;
use super::*;

/// Evaluates `sql` against `props` (`TAGS` included).
fn check(sql: &str, props: &[(&str, &str)]) -> bool {
    let e = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    e.accepts(&|n: &str| props.iter().find(|(k, _)| *k == n).map(|(_, v)| *v))
}

fn rejected(sql: &str) -> String {
    match Filter::sql(sql) {
        Err(BrokerError::BadRequest { code, message }) => {
            assert_eq!(code, Reason::IllegalFilterExpression, "{sql}");
            message
        }
        other => panic!("{sql} was not rejected: {other:?}"),
    }
}

#[test]
fn tag_expressions() {
    assert_eq!(Filter::tags("*").unwrap(), Filter::All);
    assert_eq!(Filter::tags("").unwrap(), Filter::All);
    let Filter::Tags(tags) = Filter::tags("TagA || TagB").unwrap() else { panic!("not tags") };
    assert_eq!(tags, ["TagA", "TagB"]);
    let f = Filter::tags("TagA||TagB||TagC").unwrap();
    assert!(f.may_match(tag_hash(Some("TagC"))));
    assert!(!f.may_match(0));
    assert!(Filter::tags("a||").is_err());
}

/// The rows of the SQL92 table in the RocketMQ notes.
#[test]
fn seed_table() {
    // IS NULL / IS NOT NULL
    assert!(check("a IS NULL", &[]));
    assert!(!check("a IS NULL", &[("a", "1")]));
    assert!(check("a IS NOT NULL", &[("a", "")]));
    // > on numbers; a numeric string is a number
    assert!(check("a IS NOT NULL AND a > 100", &[("a", "101")]));
    assert!(!check("a IS NOT NULL AND a > 100", &[("a", "100")]));
    assert!(!check("a > 100", &[("a", "abc")]), "a non-number is filtered out");
    // BETWEEN, NOT BETWEEN (inclusive bounds)
    for (v, inside) in [("9", false), ("10", true), ("55", true), ("100", true), ("101", false)] {
        assert_eq!(check("a IS NOT NULL AND (a BETWEEN 10 AND 100)", &[("a", v)]), inside, "{v}");
        assert_eq!(check("a IS NOT NULL AND (a NOT BETWEEN 10 AND 100)", &[("a", v)]), !inside, "{v}");
    }
    // IN
    assert!(check("a IS NOT NULL AND (a IN ('abc', 'def'))", &[("a", "def")]));
    assert!(!check("a IN ('abc', 'def')", &[("a", "xyz")]));
    assert!(check("a NOT IN ('abc', 'def')", &[("a", "xyz")]));
    // = <> on strings and numbers
    assert!(check("a IS NOT NULL AND (a = 'abc' OR a <> 'def')", &[("a", "xyz")]));
    assert!(!check("a = 'abc' OR a <> 'def'", &[("a", "def")]));
    assert!(check("a = 10", &[("a", "10")]));
    assert!(check("a <> 10", &[("a", "11")]));
    // AND / OR precedence: AND binds tighter
    let sql = "a IS NOT NULL AND (a > 100) OR (b IS NULL)";
    assert!(check(sql, &[("a", "101"), ("b", "x")]));
    assert!(check(sql, &[("a", "1")]));
    assert!(!check(sql, &[("a", "1"), ("b", "x")]));
    // the examples
    let sql = "Region IS NOT NULL AND price IS NOT NULL AND Region = 'Hangzhou' AND price > 30";
    assert!(check(sql, &[("Region", "Hangzhou"), ("price", "31")]));
    assert!(!check(sql, &[("Region", "Hangzhou"), ("price", "30")]));
    assert!(!check(sql, &[("Region", "Beijing"), ("price", "31")]));
    assert!(check("True", &[]));
    assert!(check("TAGS = 'TagA'", &[("TAGS", "TagA")]));
}

/// Errors, NULL and non-boolean results filter the message out.
#[test]
fn nulls_and_type_mismatches_filter_out() {
    // A missing property makes a comparison NULL: filtered, and NOT does not rescue it.
    assert!(!check("a > 1", &[]));
    assert!(!check("NOT (a > 1)", &[]));
    assert!(!check("a = 'x'", &[]));
    assert!(!check("a <> 'x'", &[]));
    assert!(!check("a IN ('x')", &[]));
    assert!(!check("a NOT IN ('x')", &[]));
    // NULL OR TRUE is TRUE, NULL AND FALSE is FALSE.
    assert!(check("a > 1 OR TRUE", &[]));
    assert!(check("NOT (a > 1 AND FALSE)", &[]));
    // A decimal property against an integer literal is a type mismatch: filtered.
    assert!(!check("a > 3", &[("a", "3.5")]));
    assert!(!check("a < 4", &[("a", "3.5")]));
    assert!(check("a > 3.0", &[("a", "3.5")]));
    // An integer property against a decimal literal is a number.
    assert!(check("a < 3.5", &[("a", "3")]));
    // An error aborts the whole evaluation, even beside TRUE.
    assert!(!check("a > 1 OR TRUE", &[("a", "x")]));
    // Two properties compare as numbers.
    assert!(check("a < b", &[("a", "9"), ("b", "10")]));
    assert!(!check("a < b", &[("a", "x"), ("b", "y")]));
    // Strings equal as strings, not numbers.
    assert!(!check("a = b", &[("a", "1"), ("b", "01")]));
    assert!(check("a = 1", &[("a", "01")]));
    // String tests.
    assert!(check("a CONTAINS 'ng'", &[("a", "Hangzhou")]));
    assert!(check("a STARTSWITH 'Ha' AND a ENDSWITH 'ou'", &[("a", "Hangzhou")]));
    assert!(check("a NOT CONTAINS 'x'", &[("a", "Hangzhou")]));
}

#[test]
fn bad_expressions_are_rejected_with_a_position() {
    let m = rejected("a > 'abc'");
    assert!(m.contains("compare numbers") && m.contains("column 5"), "{m}");
    assert!(rejected("a BETWEEN 'x' AND 10").contains("compare numbers"));
    assert!(rejected("a IN (1, 2)").contains("list of strings"));
    assert!(rejected("a = NULL").contains("IS NULL"));
    assert!(rejected("(a = 1").contains("expected ')'"));
    assert!(rejected("a = 1 AND").contains("the end"));
    assert!(rejected("a LIKE 'x%'").contains("LIKE is not supported"));
    assert!(rejected("a").contains("expected a test"));
    assert!(rejected("'abc'").contains("expected a test"));
    assert!(rejected("a = 'open").contains("not closed"));
    assert!(rejected("a = 99999999999999999999").contains("too large"));
    assert!(rejected("a > 1 > 2").contains("do not chain"));
    assert!(rejected("a # 1").contains("unexpected character"));
    assert!(rejected("   ").contains("empty"));
    assert!(rejected("(a = 1) = TRUE").contains("cannot be compared"));
}

#[test]
fn hostile_input_hits_the_limits_not_the_stack() {
    let deep = format!("{}a = 1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(rejected(&deep).contains("bytes"));
    let deep = format!("{}a = 1{}", "(".repeat(DEPTH_MAX + 1), ")".repeat(DEPTH_MAX + 1));
    assert!(rejected(&deep).contains("nested"));
    let nots = format!("{}a = 1", "NOT ".repeat(DEPTH_MAX + 1));
    assert!(rejected(&nots).contains("nested"));
    let ok = format!("{}a = 1{}", "(".repeat(DEPTH_MAX), ")".repeat(DEPTH_MAX));
    assert!(parse(&ok).is_ok());
    // Long flat chains are fine: AND and OR are n-ary.
    let chain = vec!["a = 1"; 800].join(" AND ");
    assert!(chain.len() < LEN_MAX);
    assert!(check(&chain, &[("a", "1")]));
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "between",
    "in",
    "is",
    "null",
    "true",
    "false",
    "contains",
    "startswith",
    "endswith",
    "like",
    "escape",
];

fn prop_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,4}".prop_filter("not a keyword", |s| !KEYWORDS.contains(&s.as_str()))
}

fn number() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<i64>().prop_map(Literal::Long),
        (-1e6f64..1e6).prop_map(Literal::Double),
        (-20i64..20).prop_map(Literal::Long),
    ]
}

fn numeric_operand() -> impl Strategy<Value = Operand> {
    prop_oneof![prop_name().prop_map(Operand::Prop), number().prop_map(Operand::Lit)]
}

fn any_operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        numeric_operand(),
        "[ -~]{0,6}".prop_map(|s| Operand::Lit(Literal::Str(s))),
        any::<bool>().prop_map(|b| Operand::Lit(Literal::Bool(b))),
    ]
}

/// Valid expressions, as the parser would build them.
fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Expr::Const),
        (any_operand(), prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Ne)], any_operand())
            .prop_map(|(l, op, r)| Expr::Cmp(l, op, r)),
        (
            numeric_operand(),
            prop_oneof![Just(CmpOp::Lt), Just(CmpOp::Le), Just(CmpOp::Gt), Just(CmpOp::Ge)],
            numeric_operand()
        )
            .prop_map(|(l, op, r)| Expr::Cmp(l, op, r)),
        (numeric_operand(), numeric_operand(), numeric_operand(), any::<bool>())
            .prop_map(|(value, low, high, negated)| Expr::Between { value, low, high, negated }),
        (prop_name(), prop::collection::vec("[a-z']{0,3}", 1..4), any::<bool>())
            .prop_map(|(p, set, negated)| Expr::In { value: Operand::Prop(p), set, negated }),
        (prop_name(), "[a-z']{0,3}", any::<bool>()).prop_map(|(p, pattern, negated)| Expr::Str {
            value: Operand::Prop(p),
            op: StrOp::Contains,
            pattern,
            negated,
        }),
        (prop_name(), any::<bool>())
            .prop_map(|(p, negated)| Expr::IsNull { value: Operand::Prop(p), negated }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

/// Message properties over a small name space, so expressions hit them.
fn props() -> impl Strategy<Value = Vec<(String, String)>> {
    let value = prop_oneof!["-?[0-9]{1,3}", "-?[0-9]{1,2}\\.[0-9]", "[a-z]{0,3}"];
    prop::collection::vec((prop_name(), value), 0..6)
}

fn eval(e: &Expr, props: &[(String, String)]) -> Result<Option<bool>, super::expr::EvalError> {
    e.eval(&|n: &str| props.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the input, the parser answers (no panic, no overflow).
    #[test]
    fn parser_never_panics(s in "[ -~]{0,80}") {
        let _ = parse(&s);
    }

    /// Token soup of the real vocabulary.
    #[test]
    fn parser_never_panics_on_tokens(words in prop::collection::vec(prop_oneof![
        Just("("), Just(")"), Just("AND"), Just("OR"), Just("NOT"), Just("a"), Just("'x'"), Just("1"),
        Just("-"), Just("2.5e3"), Just("="), Just("<>"), Just(">="), Just("BETWEEN"), Just("IN"),
        Just(","), Just("IS"), Just("NULL"), Just("TRUE"), Just("CONTAINS"),
    ], 0..40)) {
        let _ = parse(&words.join(" "));
    }

    /// Printing an expression and parsing it back gives the same tree.
    #[test]
    fn display_round_trips(e in expr()) {
        let text = e.to_string();
        let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(back, e, "{}", text);
    }

    /// NOT flips TRUE and FALSE, keeps NULL and errors.
    #[test]
    fn not_is_three_valued(e in expr(), p in props()) {
        let negated = Expr::Not(Box::new(e.clone()));
        prop_assert_eq!(eval(&negated, &p), eval(&e, &p).map(|v| v.map(|b| !b)));
    }

    /// De Morgan holds under three-valued logic, errors included.
    #[test]
    fn de_morgan(a in expr(), b in expr(), p in props()) {
        let lhs = Expr::Not(Box::new(Expr::And(vec![a.clone(), b.clone()])));
        let rhs = Expr::Or(vec![Expr::Not(Box::new(a)), Expr::Not(Box::new(b))]);
        prop_assert_eq!(eval(&lhs, &p), eval(&rhs, &p));
    }

    /// BETWEEN is `>= AND <=`.
    #[test]
    fn between_is_two_comparisons(v in numeric_operand(), lo in numeric_operand(), hi in numeric_operand(), p in props()) {
        let between = Expr::Between { value: v.clone(), low: lo.clone(), high: hi.clone(), negated: false };
        let pair = Expr::And(vec![Expr::Cmp(v.clone(), CmpOp::Ge, lo), Expr::Cmp(v, CmpOp::Le, hi)]);
        prop_assert_eq!(eval(&between, &p), eval(&pair, &p));
    }

    /// Integer comparisons agree with Rust's.
    #[test]
    fn integer_comparisons(v in any::<i64>(), n in any::<i64>()) {
        let props = [("a", v.to_string())];
        let get = |k: &str| props.iter().find(|(x, _)| *x == k).map(|(_, v)| v.as_str());
        for (op, want) in [(">", v > n), (">=", v >= n), ("<", v < n), ("<=", v <= n), ("=", v == n), ("<>", v != n)] {
            let e = parse(&format!("a {op} {n}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(e.accepts(&get), want, "{} {} {}", v, op, n);
        }
    }
}
