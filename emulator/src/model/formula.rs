//! A small interpreter for Salesforce formula syntax, enough for the formula fields,
//! compound names and validation rules the object definitions declare.
//!
//! Supported: number, string (`'…'` or `"…"`), `TRUE`/`FALSE`/`NULL` literals; field
//! references on the same record (`Amount__c`) and through one lookup (`Account__r.Name`);
//! `+ - * / ^ &`, `= == <> != < <= > >=`, `&& ||`; and the functions `AND OR NOT IF
//! ISBLANK ISPICKVAL BLANKVALUE TEXT LEN TRIM ROUND ABS TODAY NOW`. Anything else is
//! refused when the definition loads, never while a record is read.

use chrono::{DateTime, Duration, Utc};

use self::parse::{Parser, lex};
use super::{FieldDef, FieldType, ObjectDef, Value};

mod parse;
#[cfg(test)]
mod tests;

/// Why a formula could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("formula {formula:?}: {message}")]
pub struct FormulaError {
    pub formula: String,
    pub message: String,
}

/// What a formula reads while it evaluates for one record.
pub trait FormulaInputs {
    /// The value of this record's field at `index`, as a reader sees it (formulas computed).
    fn field(&self, index: usize) -> Value;
    /// The value of `field` on the record the lookup at `reference` points to (`Null` when
    /// the lookup is empty or the field does not exist on the parent).
    fn parent_field(&self, reference: usize, field: &str) -> Value;
    /// The org's current time, for `NOW()` and `TODAY()`.
    fn now(&self) -> DateTime<Utc>;
}

/// A compiled formula. Field references are resolved to positions in the object's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    source: String,
    expr: Expr,
    blank_as_zero: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Value),
    Field(usize),
    Parent { reference: usize, field: Box<str> },
    Negate(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Concat,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    And,
    Or,
    Not,
    If,
    IsBlank,
    IsPickval,
    BlankValue,
    Text,
    Len,
    Trim,
    Round,
    Abs,
    Today,
    Now,
}

impl Func {
    fn by_name(name: &str) -> Option<(Func, std::ops::RangeInclusive<usize>)> {
        let upper = name.to_ascii_uppercase();
        Some(match upper.as_str() {
            "AND" => (Func::And, 1..=usize::MAX),
            "OR" => (Func::Or, 1..=usize::MAX),
            "NOT" => (Func::Not, 1..=1),
            "IF" => (Func::If, 3..=3),
            "ISBLANK" | "ISNULL" => (Func::IsBlank, 1..=1),
            "ISPICKVAL" => (Func::IsPickval, 2..=2),
            "BLANKVALUE" | "NULLVALUE" => (Func::BlankValue, 2..=2),
            "TEXT" => (Func::Text, 1..=1),
            "LEN" => (Func::Len, 1..=1),
            "TRIM" => (Func::Trim, 1..=1),
            "ROUND" => (Func::Round, 2..=2),
            "ABS" => (Func::Abs, 1..=1),
            "TODAY" => (Func::Today, 0..=0),
            "NOW" => (Func::Now, 0..=0),
            _ => return None,
        })
    }
}

impl Formula {
    /// Compiles `source` against `object`'s fields. `blank_as_zero` is Salesforce's
    /// `formulaTreatBlanksAs = BlankAsZero`: blank number fields read as 0.
    pub fn compile(
        source: &str,
        object: &ObjectDef,
        blank_as_zero: bool,
    ) -> Result<Formula, FormulaError> {
        let error = |message: String| FormulaError {
            formula: source.to_owned(),
            message,
        };
        let tokens = lex(source).map_err(error)?;
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
            object,
        };
        let expr = parser.expr(0).map_err(error)?;
        if parser.pos != tokens.len() {
            return Err(error(format!(
                "unexpected {:?} after the end of the formula",
                tokens[parser.pos]
            )));
        }
        Ok(Formula {
            source: source.to_owned(),
            expr,
            blank_as_zero,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the formula and shapes the result as `result` field's type wants it
    /// (numbers rounded to its scale, empty text as null).
    pub fn evaluate(&self, inputs: &dyn FormulaInputs, result: &FieldDef) -> Value {
        let value = self.eval(&self.expr, inputs);
        conform(value, result)
    }

    /// Evaluates a condition (a validation rule): only `TRUE` counts as true.
    pub fn is_true(&self, inputs: &dyn FormulaInputs) -> bool {
        matches!(self.eval(&self.expr, inputs), Value::Bool(true))
    }

    fn eval(&self, expr: &Expr, inputs: &dyn FormulaInputs) -> Value {
        match expr {
            Expr::Literal(v) => v.clone(),
            Expr::Field(i) => inputs.field(*i),
            Expr::Parent { reference, field } => inputs.parent_field(*reference, field),
            Expr::Negate(e) => match self.number(e, inputs) {
                Some(n) => Value::Double(-n),
                None => Value::Null,
            },
            Expr::Binary(op, a, b) => self.binary(*op, a, b, inputs),
            Expr::Call(func, args) => self.call(*func, args, inputs),
        }
    }

    fn number(&self, expr: &Expr, inputs: &dyn FormulaInputs) -> Option<f64> {
        match self.eval(expr, inputs) {
            Value::Null if self.blank_as_zero => Some(0.0),
            v => v.as_f64(),
        }
    }

    fn binary(&self, op: BinOp, a: &Expr, b: &Expr, inputs: &dyn FormulaInputs) -> Value {
        match op {
            BinOp::And => Value::Bool(
                self.eval(a, inputs) == Value::Bool(true)
                    && self.eval(b, inputs) == Value::Bool(true),
            ),
            BinOp::Or => Value::Bool(
                self.eval(a, inputs) == Value::Bool(true)
                    || self.eval(b, inputs) == Value::Bool(true),
            ),
            BinOp::Concat => {
                let mut s = text_of(&self.eval(a, inputs));
                s.push_str(&text_of(&self.eval(b, inputs)));
                if s.is_empty() {
                    Value::Null
                } else {
                    Value::text(s)
                }
            }
            BinOp::Add | BinOp::Sub => {
                let (x, y) = (self.eval(a, inputs), self.eval(b, inputs));
                date_arithmetic(op, &x, &y).unwrap_or_else(|| self.arithmetic(op, x, y))
            }
            BinOp::Mul | BinOp::Div | BinOp::Pow => {
                let (x, y) = (self.eval(a, inputs), self.eval(b, inputs));
                self.arithmetic(op, x, y)
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let (x, y) = (self.eval(a, inputs), self.eval(b, inputs));
                compare(op, &self.blank(x), &self.blank(y))
            }
        }
    }

    /// Comparisons see ints and doubles alike; a blank stays blank (and compares false).
    fn blank(&self, v: Value) -> Value {
        match v {
            Value::Int(i) => Value::Double(i as f64),
            v => v,
        }
    }

    fn arithmetic(&self, op: BinOp, x: Value, y: Value) -> Value {
        let as_number = |v: Value| match v {
            Value::Null if self.blank_as_zero => Some(0.0),
            v => v.as_f64(),
        };
        let (Some(x), Some(y)) = (as_number(x), as_number(y)) else {
            return Value::Null;
        };
        let n = match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div if y == 0.0 => return Value::Null,
            BinOp::Div => x / y,
            _ => x.powf(y),
        };
        if n.is_finite() {
            Value::Double(n)
        } else {
            Value::Null
        }
    }

    fn call(&self, func: Func, args: &[Expr], inputs: &dyn FormulaInputs) -> Value {
        let arg = |i: usize| self.eval(&args[i], inputs);
        match func {
            Func::And => Value::Bool(
                args.iter()
                    .all(|a| self.eval(a, inputs) == Value::Bool(true)),
            ),
            Func::Or => Value::Bool(
                args.iter()
                    .any(|a| self.eval(a, inputs) == Value::Bool(true)),
            ),
            Func::Not => match arg(0) {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Func::If => {
                if arg(0) == Value::Bool(true) {
                    arg(1)
                } else {
                    arg(2)
                }
            }
            Func::IsBlank => Value::Bool(is_blank(&arg(0))),
            Func::IsPickval => Value::Bool(text_of(&arg(0)) == text_of(&arg(1))),
            Func::BlankValue => {
                let v = arg(0);
                if is_blank(&v) { arg(1) } else { v }
            }
            Func::Text => match arg(0) {
                Value::Null => Value::Null,
                v => Value::text(text_of(&v)),
            },
            Func::Len => Value::Int(text_of(&arg(0)).chars().count() as i64),
            Func::Trim => {
                let s = text_of(&arg(0));
                let t = s.trim();
                if t.is_empty() {
                    Value::Null
                } else {
                    Value::text(t)
                }
            }
            Func::Round => match (self.number(&args[0], inputs), self.number(&args[1], inputs)) {
                (Some(x), Some(d)) => Value::Double(round_half_up(x, d as i32)),
                _ => Value::Null,
            },
            Func::Abs => self
                .number(&args[0], inputs)
                .map_or(Value::Null, |x| Value::Double(x.abs())),
            Func::Today => Value::Date(inputs.now().date_naive()),
            Func::Now => Value::DateTime(inputs.now()),
        }
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Text(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// How a value reads inside text: `&` and `TEXT()`.
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) if d.fract() == 0.0 && d.abs() < 1e15 => format!("{}", *d as i64),
        Value::Double(d) => d.to_string(),
        Value::Text(s) => s.to_string(),
        Value::Date(d) => super::format_date(d),
        Value::DateTime(d) => d.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        Value::Time(t) => super::format_time(t),
    }
}

fn date_arithmetic(op: BinOp, x: &Value, y: &Value) -> Option<Value> {
    let days = |n: f64| Duration::try_days(n.trunc() as i64);
    Some(match (op, x, y) {
        (BinOp::Add, Value::Date(d), n) | (BinOp::Add, n, Value::Date(d)) => {
            Value::Date(*d + days(n.as_f64()?)?)
        }
        (BinOp::Sub, Value::Date(d), Value::Date(e)) => Value::Double((*d - *e).num_days() as f64),
        (BinOp::Sub, Value::Date(d), n) => Value::Date(*d - days(n.as_f64()?)?),
        (BinOp::Sub, Value::DateTime(d), Value::DateTime(e)) => {
            Value::Double((*d - *e).num_milliseconds() as f64 / 86_400_000.0)
        }
        _ => return None,
    })
}

fn compare(op: BinOp, x: &Value, y: &Value) -> Value {
    use std::cmp::Ordering;
    let ordering = match (x, y) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        (Value::DateTime(a), Value::DateTime(b)) => Some(a.cmp(b)),
        (Value::Time(a), Value::Time(b)) => Some(a.cmp(b)),
        _ => None,
    };
    Value::Bool(match (op, ordering) {
        (BinOp::Eq, o) => o == Some(Ordering::Equal),
        (BinOp::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (BinOp::Lt, Some(o)) => o == Ordering::Less,
        (BinOp::Le, Some(o)) => o != Ordering::Greater,
        (BinOp::Gt, Some(o)) => o == Ordering::Greater,
        (_, Some(o)) => o != Ordering::Less,
    })
}

/// Salesforce rounds half away from zero.
fn round_half_up(x: f64, digits: i32) -> f64 {
    let factor = 10f64.powi(digits);
    let scaled = x * factor;
    // Nudge past binary representation error (2.675 is 2.67499999…).
    let nudged = scaled + scaled.signum() * 1e-9 * scaled.abs().max(1.0);
    nudged.round() / factor
}

/// Shapes a formula's result as the field's type: numbers rounded to the field's scale,
/// booleans never null, empty text null.
fn conform(value: Value, field: &FieldDef) -> Value {
    let t = field.field_type;
    match value {
        Value::Null if t == FieldType::Boolean => Value::Bool(false),
        v @ (Value::Int(_) | Value::Double(_)) if t.is_fractional() || t == FieldType::Int => {
            let n = v.as_f64().unwrap_or_default();
            if t == FieldType::Int {
                Value::Int(round_half_up(n, 0) as i64)
            } else {
                Value::Double(round_half_up(n, field.scale as i32))
            }
        }
        v @ (Value::Int(_) | Value::Double(_) | Value::Bool(_) | Value::Date(_)) if t.is_text() => {
            Value::text(text_of(&v))
        }
        Value::Text(s) if s.is_empty() => Value::Null,
        v => v,
    }
}
