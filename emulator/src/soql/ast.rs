//! The parsed query, before it meets the org's object definitions. Every name and literal
//! keeps the byte offset where it starts so binding errors can point at it.

/// A field path as written: `Name`, `Account.Name`, `a.Account__r.Name`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    /// The dot-separated names, as spelled in the query.
    pub parts: Vec<String>,
    /// Byte offset of the first name.
    pub offset: usize,
}

impl FieldPath {
    pub fn dotted(&self) -> String {
        self.parts.join(".")
    }
}

/// One entry of the `SELECT` list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(FieldPath),
    /// `COUNT()`: the response carries only `totalSize`.
    Count {
        offset: usize,
    },
}

/// `=`, `!=` (or `<>`), `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A relative date literal: `TODAY`, `LAST_N_DAYS:30`, ... resolved against a clock when
/// the query is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeDate {
    Yesterday,
    Today,
    Tomorrow,
    LastNDays(u32),
    NextNDays(u32),
    NDaysAgo(u32),
    NDaysFromNow(u32),
    Last90Days,
    Next90Days,
    LastMonth,
    ThisMonth,
    NextMonth,
    LastYear,
    ThisYear,
    NextYear,
}

/// A literal as written; its meaning depends on the field it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum LiteralKind {
    Null,
    Bool(bool),
    /// A quoted string, escapes still raw (without the quotes).
    String(String),
    /// A number as written, sign included.
    Number(String),
    /// `2024-01-31`, as written.
    Date(String),
    /// `2024-01-31T10:00:00Z`, as written.
    DateTime(String),
    Relative(RelativeDate),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub kind: LiteralKind,
    pub offset: usize,
}

/// A `WHERE` condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare {
        field: FieldPath,
        op: CompareOp,
        value: Literal,
    },
    /// `IN (...)` or, with `negated`, `NOT IN (...)`.
    In {
        field: FieldPath,
        negated: bool,
        values: Vec<Literal>,
    },
    Like {
        field: FieldPath,
        pattern: Literal,
    },
    /// `INCLUDES (...)` or, with `excludes`, `EXCLUDES (...)`, on multi-select picklists.
    Includes {
        field: FieldPath,
        excludes: bool,
        values: Vec<Literal>,
    },
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullsOrder {
    First,
    Last,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub field: FieldPath,
    pub descending: bool,
    /// `None` takes Salesforce's default: nulls first ascending, last descending.
    pub nulls: Option<NullsOrder>,
}

impl OrderItem {
    pub fn nulls_first(&self) -> bool {
        match self.nulls {
            Some(n) => n == NullsOrder::First,
            None => !self.descending,
        }
    }
}

/// A parsed `SELECT` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    /// The object name as written after `FROM`.
    pub from: String,
    pub from_offset: usize,
    /// `FROM Account a`: paths may start with `a.`.
    pub alias: Option<String>,
    pub filter: Option<Condition>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    /// The text of the query, for errors found after parsing.
    pub text: String,
}
