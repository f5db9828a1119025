//! Evaluating a bound query against records: field references resolved to positions,
//! literals already typed for their field, so testing a record allocates nothing (save
//! `LIKE` over non-ASCII text).
//!
//! Semantics follow SOQL rather than SQL: there is no unknown truth value. A null field
//! fails `=`, `<`, `LIKE` and `IN`, and passes `!=` and `NOT IN`; a null boolean reads as
//! `false`; a comparison through an empty lookup sees a null.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};

use super::access::RecordAccess;
use super::ast::CompareOp;
use super::literal::LikeChar;
use crate::model::{FieldType, ObjectDef, Record, Value};

/// A field reached from the queried object: follow `hops` (reference fields, each on the
/// object reached so far), then read `field`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub hops: Box<[usize]>,
    pub field: usize,
    pub field_type: FieldType,
}

impl FieldRef {
    /// The value as a reader sees it; `Null` when a lookup on the way is empty.
    pub fn value<'a, A: RecordAccess + ?Sized>(
        &self,
        access: &'a A,
        object: &'a ObjectDef,
        record: &'a Record,
    ) -> Cow<'a, Value> {
        let (mut object, mut record) = (object, record);
        for &hop in &self.hops {
            match access.parent(object, record, hop) {
                Some(parent) => (object, record) = parent,
                None => return Cow::Owned(Value::Null),
            }
        }
        let value = access.value(object, record, self.field);
        // Salesforce reads a null checkbox as false, in filters and in ordering alike.
        if self.field_type == FieldType::Boolean && value.is_null() {
            return Cow::Owned(Value::Bool(false));
        }
        value
    }
}

/// A literal made ready for one field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Null,
    /// Text compared without regard to case; held in lower case.
    Text(Box<str>),
    /// A canonical 18-character Id, compared exactly.
    Id(Box<str>),
    Number(f64),
    Bool(bool),
    Date(NaiveDate),
    /// A relative date on a date field: the days `[first, end)`.
    Days(NaiveDate, NaiveDate),
    DateTime(DateTime<Utc>),
    /// A relative date on a datetime field: the instants `[start, end)`.
    Instants(DateTime<Utc>, DateTime<Utc>),
    /// A multi-select picklist value: its entries, lower case and sorted.
    Entries(Box<[Box<str>]>),
}

/// A compiled `WHERE` clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        field: FieldRef,
        op: CompareOp,
        operand: Operand,
    },
    In {
        field: FieldRef,
        negated: bool,
        operands: Vec<Operand>,
    },
    Like {
        field: FieldRef,
        pattern: LikePattern,
    },
    /// `INCLUDES`: any group whose entries are all present; `EXCLUDES` is its negation.
    Includes {
        field: FieldRef,
        excludes: bool,
        groups: Vec<Box<[Box<str>]>>,
    },
}

impl Filter {
    pub fn matches<A: RecordAccess + ?Sized>(
        &self,
        access: &A,
        object: &ObjectDef,
        record: &Record,
    ) -> bool {
        match self {
            Filter::And(terms) => terms.iter().all(|t| t.matches(access, object, record)),
            Filter::Or(terms) => terms.iter().any(|t| t.matches(access, object, record)),
            Filter::Not(inner) => !inner.matches(access, object, record),
            Filter::Compare { field, op, operand } => {
                compare(&field.value(access, object, record), *op, operand)
            }
            Filter::In {
                field,
                negated,
                operands,
            } => {
                let value = field.value(access, object, record);
                let found = operands.iter().any(|o| compare(&value, CompareOp::Eq, o));
                found != *negated
            }
            Filter::Like { field, pattern } => match field.value(access, object, record).as_ref() {
                Value::Text(text) => pattern.matches(text),
                _ => false,
            },
            Filter::Includes {
                field,
                excludes,
                groups,
            } => {
                let value = field.value(access, object, record);
                let included = match value.as_ref() {
                    Value::Text(text) => groups.iter().any(|group| {
                        group
                            .iter()
                            .all(|wanted| text.split(';').any(|have| eq_folded(have, wanted)))
                    }),
                    _ => false,
                };
                included != *excludes
            }
        }
    }
}

/// `value op operand`, with SOQL's null semantics.
pub fn compare(value: &Value, op: CompareOp, operand: &Operand) -> bool {
    if let Operand::Null = operand {
        return match op {
            CompareOp::Eq => value.is_null(),
            CompareOp::Ne => !value.is_null(),
            _ => false,
        };
    }
    if value.is_null() {
        return op == CompareOp::Ne;
    }
    let range = |start: Ordering, end: Ordering| match op {
        // `start`/`end`: how the value compares with the range's first and end bounds.
        CompareOp::Eq => start != Ordering::Less && end == Ordering::Less,
        CompareOp::Ne => !(start != Ordering::Less && end == Ordering::Less),
        CompareOp::Lt => start == Ordering::Less,
        CompareOp::Le => end == Ordering::Less,
        CompareOp::Gt => end != Ordering::Less,
        CompareOp::Ge => start != Ordering::Less,
    };
    let ordering = match (value, operand) {
        (Value::Date(d), Operand::Days(first, end)) => return range(d.cmp(first), d.cmp(end)),
        (Value::DateTime(t), Operand::Instants(first, end)) => {
            return range(t.cmp(first), t.cmp(end));
        }
        (Value::Text(text), Operand::Entries(entries)) => {
            let same = same_entries(text, entries);
            return match op {
                CompareOp::Eq => same,
                CompareOp::Ne => !same,
                _ => false,
            };
        }
        (Value::Text(text), Operand::Text(folded)) => cmp_folded(text, folded),
        (Value::Text(text), Operand::Id(id)) => text.as_bytes().cmp(id.as_bytes()),
        (Value::Bool(b), Operand::Bool(o)) => b.cmp(o),
        (Value::Int(i), Operand::Number(n)) => (*i as f64).total_cmp(n),
        (Value::Double(d), Operand::Number(n)) => d.total_cmp(n),
        (Value::Date(d), Operand::Date(o)) => d.cmp(o),
        (Value::DateTime(t), Operand::DateTime(o)) => t.cmp(o),
        // A value of another shape than its field's type (only a broken store makes
        // one) satisfies nothing but `!=`.
        _ => return op == CompareOp::Ne,
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
    }
}

/// Orders two non-null values of the same field, as `ORDER BY` does: text without regard
/// to case, Ids by their characters, numbers, dates and times by value, `false` first.
pub fn order_values(a: &Value, b: &Value, field_type: FieldType) -> Ordering {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => match field_type {
            FieldType::Id | FieldType::Reference => x.as_bytes().cmp(y.as_bytes()),
            _ => cmp_case_insensitive(x, y).then_with(|| x.cmp(y)),
        },
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::DateTime(x), Value::DateTime(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

/// Lower-cases text the way comparisons fold it.
pub fn fold(text: &str) -> Box<str> {
    text.to_lowercase().into_boxed_str()
}

/// Compares `text` with `folded` (already lower case) without regard to `text`'s case.
fn cmp_folded(text: &str, folded: &str) -> Ordering {
    cmp_lowered(text, folded, false)
}

fn cmp_case_insensitive(a: &str, b: &str) -> Ordering {
    cmp_lowered(a, b, true)
}

/// Compares `a` lower-cased with `b` (lower-cased too when `lower_b`). ASCII runs take a
/// byte loop; the first non-ASCII byte hands the rest to full Unicode case folding.
fn cmp_lowered(a: &str, b: &str, lower_b: bool) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    for (i, (&p, &q)) in x.iter().zip(y).enumerate() {
        if !p.is_ascii() || !q.is_ascii() {
            // Every earlier byte was ASCII in both, so `i` is a boundary in both.
            let rest_a = a[i..].chars().flat_map(char::to_lowercase);
            return if lower_b {
                rest_a.cmp(b[i..].chars().flat_map(char::to_lowercase))
            } else {
                rest_a.cmp(b[i..].chars())
            };
        }
        let (p, q) = (
            p.to_ascii_lowercase(),
            if lower_b { q.to_ascii_lowercase() } else { q },
        );
        if p != q {
            return p.cmp(&q);
        }
    }
    x.len().cmp(&y.len())
}

fn eq_folded(text: &str, folded: &str) -> bool {
    cmp_folded(text, folded) == Ordering::Equal
}

/// Whether a multi-select value holds exactly `entries` (in any order).
fn same_entries(text: &str, entries: &[Box<str>]) -> bool {
    let mut count = 0;
    for have in text.split(';') {
        if !entries.iter().any(|e| eq_folded(have, e)) {
            return false;
        }
        count += 1;
    }
    count == entries.len()
}

/// A compiled `LIKE` pattern: `%` any run of characters, `_` exactly one, everything else
/// itself without regard to case.
#[derive(Debug, Clone, PartialEq)]
pub struct LikePattern {
    parts: Box<[LikePart]>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LikePart {
    AnyRun,
    AnyOne,
    Char(char),
}

impl LikePattern {
    pub fn new(chars: &[LikeChar]) -> LikePattern {
        let mut parts = Vec::with_capacity(chars.len());
        for c in chars {
            match *c {
                LikeChar::Wildcard('%') => {
                    // Runs of `%` mean the same as one.
                    if parts.last() != Some(&LikePart::AnyRun) {
                        parts.push(LikePart::AnyRun);
                    }
                }
                LikeChar::Wildcard(_) => parts.push(LikePart::AnyOne),
                LikeChar::Literal(c) => parts.extend(c.to_lowercase().map(LikePart::Char)),
            }
        }
        LikePattern {
            parts: parts.into_boxed_slice(),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        if text.is_ascii() {
            return glob(&self.parts, text.as_bytes(), |b| {
                char::from(b.to_ascii_lowercase())
            });
        }
        let folded: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
        glob(&self.parts, &folded, |c| c)
    }
}

/// Wildcard matching with single-star backtracking: linear in practice, never exponential.
fn glob<T: Copy>(pattern: &[LikePart], text: &[T], to_char: impl Fn(T) -> char) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(LikePart::AnyRun) => {
                resume = Some((p, t));
                p += 1;
                continue;
            }
            Some(LikePart::AnyOne) => {
                p += 1;
                t += 1;
                continue;
            }
            Some(LikePart::Char(c)) if *c == to_char(text[t]) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match resume {
            Some((star, from)) => {
                p = star + 1;
                t = from + 1;
                resume = Some((star, from + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|part| *part == LikePart::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::super::literal::like_chars;
    use super::*;

    fn like(pattern: &str, text: &str) -> bool {
        LikePattern::new(&like_chars(pattern).unwrap()).matches(text)
    }

    #[test]
    fn like_wildcards() {
        assert!(like("Ter%", "Terminal"));
        assert!(like("ter%", "TERMINAL"));
        assert!(!like("Ter%", "Inter"));
        assert!(like("%ter%", "Inter"));
        assert!(like("T_r", "Tor"));
        assert!(!like("T_r", "Toor"));
        assert!(like("%", ""));
        assert!(!like("_", ""));
        assert!(like("a%b%c", "aXXbYYc"));
        assert!(!like("a%b%c", "aXXbYY"));
        assert!(like("%%x", "yyx"));
    }

    #[test]
    fn like_escapes_match_literally() {
        assert!(like(r"Ter\%", "Ter%"));
        assert!(!like(r"Ter\%", "Terminal"));
        assert!(like(r"Ter\%%", "Ter%minal"));
        assert!(like(r"a\_b", "a_b"));
        assert!(!like(r"a\_b", "axb"));
    }

    #[test]
    fn like_folds_non_ascii_case() {
        assert!(like("ÉCOLE%", "école normale"));
        assert!(like("_cole", "École"));
    }

    #[test]
    fn null_semantics() {
        let null = Value::Null;
        let x = Operand::Text(fold("x"));
        assert!(!compare(&null, CompareOp::Eq, &x));
        assert!(compare(&null, CompareOp::Ne, &x));
        assert!(!compare(&null, CompareOp::Lt, &x));
        assert!(compare(&null, CompareOp::Eq, &Operand::Null));
        assert!(!compare(&Value::text("a"), CompareOp::Eq, &Operand::Null));
        assert!(compare(&Value::text("a"), CompareOp::Ne, &Operand::Null));
    }

    #[test]
    fn text_compares_without_case() {
        let acme = Operand::Text(fold("ACME"));
        assert!(compare(&Value::text("acme"), CompareOp::Eq, &acme));
        assert!(compare(&Value::text("Acmf"), CompareOp::Gt, &acme));
        assert!(compare(
            &Value::text("Ärger"),
            CompareOp::Eq,
            &Operand::Text(fold("äRGER"))
        ));
    }

    #[test]
    fn ranges() {
        let d = |day| NaiveDate::from_ymd_opt(2024, 3, day).unwrap();
        let today = Operand::Days(d(5), d(6));
        let before = Value::Date(d(4));
        let on = Value::Date(d(5));
        let after = Value::Date(d(6));
        assert!(compare(&on, CompareOp::Eq, &today));
        assert!(!compare(&after, CompareOp::Eq, &today));
        assert!(compare(&before, CompareOp::Lt, &today));
        assert!(!compare(&on, CompareOp::Lt, &today));
        assert!(compare(&on, CompareOp::Le, &today));
        assert!(!compare(&after, CompareOp::Le, &today));
        assert!(compare(&after, CompareOp::Gt, &today));
        assert!(!compare(&on, CompareOp::Gt, &today));
        assert!(compare(&on, CompareOp::Ge, &today));
        assert!(!compare(&before, CompareOp::Ge, &today));
        assert!(compare(&before, CompareOp::Ne, &today));
    }

    #[test]
    fn multi_select_equality_ignores_order_and_case() {
        let entries = Operand::Entries(vec![fold("a"), fold("b")].into_boxed_slice());
        assert!(compare(&Value::text("B;A"), CompareOp::Eq, &entries));
        assert!(!compare(&Value::text("A"), CompareOp::Eq, &entries));
        assert!(!compare(&Value::text("A;B;C"), CompareOp::Eq, &entries));
    }

    #[test]
    fn ordering() {
        assert_eq!(
            order_values(
                &Value::text("apple"),
                &Value::text("Banana"),
                FieldType::String
            ),
            Ordering::Less
        );
        assert_eq!(
            order_values(&Value::text("b"), &Value::text("B"), FieldType::Id),
            Ordering::Greater
        );
        assert_eq!(
            order_values(&Value::Int(2), &Value::Double(1.5), FieldType::Double),
            Ordering::Greater
        );
    }
}
