//! What a statement may do, as far as the proxy cares: read only, possibly write a mirrored
//! table, or begin, commit or roll back a transaction.
//!
//! Where the leading keywords settle it, they decide: transaction control (exact for that
//! grammar), INSERT/UPDATE/DELETE/MERGE/CALL/DO/EXECUTE (may write whatever follows), and
//! queries, DDL and utility statements (reads). This keeps the parser off the hot path of
//! every read, whose text differs with each inlined literal. The rest (WITH, EXPLAIN, COPY,
//! anything unexpected) is parsed with `sqlparser` (PostgreSqlDialect) and cached by text.
//! A statement that fails to parse counts as "may write": a wrong "may write" costs a
//! managed transaction around a read, while a wrong "read" would be caught only at commit,
//! by the capture triggers' check that nothing captured is left unpushed.

pub mod cache;
pub mod lexer;

use std::ops::Range;

use sqlparser::ast::{SetExpr, Statement as Ast};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// What one statement may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Cannot change a mirrored table's rows: queries, DDL, SET, SHOW, LISTEN, savepoints…
    Read,
    /// May change rows: INSERT, UPDATE, DELETE, MERGE, COPY FROM, CALL, EXECUTE, a query
    /// with a data-modifying WITH, EXPLAIN ANALYZE of any of these, or unparseable SQL.
    MayWrite,
    /// BEGIN or START TRANSACTION.
    Begin,
    /// COMMIT or END (not COMMIT PREPARED).
    Commit,
    /// ROLLBACK or ABORT (not ROLLBACK TO SAVEPOINT, not ROLLBACK PREPARED).
    Rollback,
}

/// One statement of a query string: where it is, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub range: Range<usize>,
    pub kind: Kind,
}

/// The statements of one query string, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Classified {
    pub statements: Vec<Statement>,
}

impl Classified {
    pub fn may_write(&self) -> bool {
        self.has(Kind::MayWrite)
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.statements.iter().any(|s| s.kind == kind)
    }

    /// The kind of a single-statement string (what Parse carries); `Read` when empty.
    pub fn single_kind(&self) -> Kind {
        match self.statements.as_slice() {
            [] => Kind::Read,
            [one] => one.kind,
            // Parse refuses several statements, so this reaches the server only to fail;
            // "may write" keeps the failure inside a managed transaction all the same.
            _ => Kind::MayWrite,
        }
    }
}

/// The kind of `sql` when it is at most one statement, with nothing in it for the scanner
/// to decide, and its leading keywords settle it (`None` otherwise; an empty string is a
/// read). This is [`classify_lexically`] for the commonest simple-protocol query, one with
/// its literals inlined, whose text is new each time: it allocates nothing and caches
/// nothing.
pub fn plain_kind(sql: &[u8]) -> Option<Kind> {
    let range = lexer::plain_statement(sql)?;
    if range.is_empty() {
        return Some(Kind::Read);
    }
    lexical_kind(&sql[range])
}

/// Classifies every statement of `sql`.
pub fn classify(sql: &[u8]) -> Classified {
    classify_with(sql, |text| {
        lexical_kind(text).unwrap_or_else(|| parsed_kind(text))
    })
}

/// Classifies `sql` if every statement is decided by its leading keywords alone, without
/// the parser. Those are cheap enough not to cache, which keeps statements with inlined
/// literals out of the cache.
pub fn classify_lexically(sql: &[u8]) -> Option<Classified> {
    let mut decided = true;
    let classified = classify_with(sql, |text| {
        lexical_kind(text).unwrap_or_else(|| {
            decided = false;
            Kind::MayWrite
        })
    });
    decided.then_some(classified)
}

fn classify_with(sql: &[u8], mut kind_of: impl FnMut(&[u8]) -> Kind) -> Classified {
    let statements = lexer::split_statements(sql)
        .into_iter()
        .map(|range| {
            let kind = kind_of(&sql[range.clone()]);
            Statement { range, kind }
        })
        .collect();
    Classified { statements }
}

/// Classifies one statement's text.
pub fn classify_statement(text: &[u8]) -> Kind {
    lexical_kind(text).unwrap_or_else(|| parsed_kind(text))
}

/// Leading keywords that settle a statement as a read. None of these statements can change
/// a mirrored table's rows except through a function it calls, which parsing could not see
/// into either; DDL and utility statements are here so that SQL `sqlparser` does not follow
/// (and statements that may not run inside a transaction block, such as VACUUM) are never
/// mistaken for writes and wrapped in a transaction.
const READS: &[&str] = &[
    "SELECT",
    "VALUES",
    "TABLE",
    "SHOW",
    "FETCH",
    "MOVE",
    "CLOSE",
    "DECLARE",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "RESET",
    "LISTEN",
    "UNLISTEN",
    "NOTIFY",
    "VACUUM",
    "ANALYZE",
    "CLUSTER",
    "REINDEX",
    "CHECKPOINT",
    "CREATE",
    "DROP",
    "ALTER",
    "GRANT",
    "REVOKE",
    "COMMENT",
    "SECURITY",
    "LOAD",
    "DISCARD",
    "DEALLOCATE",
    "PREPARE",
    "LOCK",
    "REFRESH",
    "IMPORT",
    // Refused on mirrored tables by their trigger, so never a write to push.
    "TRUNCATE",
];

/// Leading keywords that settle a statement as a possible write, parsed or not.
const WRITES: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "CALL", "DO", "EXECUTE",
];

/// The kinds the leading keywords decide; `None` leaves the statement to the parser (WITH,
/// EXPLAIN, COPY, and anything unexpected).
fn lexical_kind(text: &[u8]) -> Option<Kind> {
    let [first, second, third] = lexer::leading_words(text);
    let is = |word: &[u8], keyword: &str| word.eq_ignore_ascii_case(keyword.as_bytes());
    let is_any = |word: &[u8], keywords: &[&str]| keywords.iter().any(|k| is(word, k));
    if is(first, "BEGIN") || (is(first, "START") && is(second, "TRANSACTION")) {
        return Some(Kind::Begin);
    }
    // Two-phase commit statements end or finish a prepared transaction, which the capture
    // triggers' commit check already guards; to the proxy they are plain statements that
    // must not be wrapped in a transaction.
    if is_any(first, &["COMMIT", "ROLLBACK"]) && is(second, "PREPARED") {
        return Some(Kind::Read);
    }
    if is_any(first, &["COMMIT", "END"]) {
        return Some(Kind::Commit);
    }
    if is_any(first, &["ROLLBACK", "ABORT"]) {
        let to_savepoint =
            is(second, "TO") || (is_any(second, &["WORK", "TRANSACTION"]) && is(third, "TO"));
        return Some(if to_savepoint {
            Kind::Read
        } else {
            Kind::Rollback
        });
    }
    if is_any(first, READS) {
        return Some(Kind::Read);
    }
    if is_any(first, WRITES) {
        return Some(Kind::MayWrite);
    }
    None
}

/// The kind `sqlparser` finds; unparseable SQL may write.
fn parsed_kind(text: &[u8]) -> Kind {
    let Ok(text) = std::str::from_utf8(text) else {
        return Kind::MayWrite;
    };
    match Parser::parse_sql(&PostgreSqlDialect {}, text) {
        Ok(statements) if !statements.is_empty() => {
            if statements.iter().any(|s| ast_kind(s) == Kind::MayWrite) {
                Kind::MayWrite
            } else {
                Kind::Read
            }
        }
        _ => Kind::MayWrite,
    }
}

fn ast_kind(statement: &Ast) -> Kind {
    match statement {
        Ast::Insert(_) | Ast::Update(_) | Ast::Delete(_) | Ast::Merge(_) => Kind::MayWrite,
        Ast::Copy { to: false, .. } => Kind::MayWrite,
        // A procedure or a prepared statement can do anything.
        Ast::Call(_) | Ast::Execute { .. } => Kind::MayWrite,
        Ast::Query(query) if query_writes(query) => Kind::MayWrite,
        Ast::Explain {
            analyze,
            options,
            statement,
            ..
        } => {
            let analyzes = *analyze
                || options.iter().flatten().any(|option| {
                    option.name.value.eq_ignore_ascii_case("analyze")
                        && !option
                            .arg
                            .as_ref()
                            .is_some_and(|arg| is_false(&arg.to_string()))
                });
            if analyzes {
                ast_kind(statement)
            } else {
                Kind::Read
            }
        }
        _ => Kind::Read,
    }
}

fn is_false(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "false" | "off" | "0" | "'false'" | "'off'"
    )
}

fn query_writes(query: &sqlparser::ast::Query) -> bool {
    query
        .with
        .iter()
        .flat_map(|with| &with.cte_tables)
        .any(|cte| query_writes(&cte.query))
        || set_expr_writes(&query.body)
}

fn set_expr_writes(expr: &SetExpr) -> bool {
    match expr {
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => true,
        SetExpr::Query(query) => query_writes(query),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr_writes(left) || set_expr_writes(right)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(sql: &str) -> Kind {
        classify_statement(sql.as_bytes())
    }

    #[test]
    fn reads() {
        for sql in [
            "SELECT * FROM salesforce.account WHERE name = 'x'",
            "SELECT * FROM salesforce.account FOR UPDATE SKIP LOCKED",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "SHOW search_path",
            "SET search_path = salesforce",
            "CREATE TABLE t (x int)",
            "COPY salesforce.account TO STDOUT",
            "EXPLAIN UPDATE salesforce.account SET name = 'x'",
            "LISTEN news",
            "VACUUM",
            "SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "ROLLBACK TO SAVEPOINT a",
            "rollback work to a",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
        ] {
            assert_eq!(kind(sql), Kind::Read, "{sql}");
        }
    }

    #[test]
    fn writes() {
        for sql in [
            "INSERT INTO salesforce.account (name) VALUES ('x') RETURNING sfid",
            "UPDATE salesforce.account SET name = 'x' WHERE id = 1",
            "DELETE FROM salesforce.account WHERE id = $1",
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET x = s.x",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "COPY salesforce.account (name) FROM STDIN",
            "CALL do_things()",
            "EXECUTE stmt(1)",
            "EXPLAIN ANALYZE DELETE FROM t",
            "EXPLAIN (ANALYZE, COSTS off) UPDATE t SET x = 1",
            "DO $$ BEGIN UPDATE t SET x = 1; END $$",
            "this is not SQL",
        ] {
            assert_eq!(kind(sql), Kind::MayWrite, "{sql}");
        }
    }

    #[test]
    fn transaction_control() {
        for (sql, expected) in [
            ("BEGIN", Kind::Begin),
            (
                "begin transaction isolation level serializable",
                Kind::Begin,
            ),
            ("START TRANSACTION READ WRITE", Kind::Begin),
            ("COMMIT", Kind::Commit),
            ("commit work and chain", Kind::Commit),
            ("END", Kind::Commit),
            ("END TRANSACTION", Kind::Commit),
            ("ROLLBACK", Kind::Rollback),
            ("ABORT", Kind::Rollback),
            ("/* orm */ ROLLBACK AND CHAIN", Kind::Rollback),
        ] {
            assert_eq!(kind(sql), expected, "{sql}");
        }
    }

    #[test]
    fn leading_keywords_decide_without_the_parser() {
        assert!(
            classify_lexically(b"SELECT abalance FROM pgbench_accounts WHERE aid = 1").is_some()
        );
        assert!(classify_lexically(b"BEGIN; SELECT 1; COMMIT").is_some());
        assert!(classify_lexically(b"BEGIN; UPDATE t SET x = 1; COMMIT").is_some());
        assert!(classify_lexically(b"EXPLAIN ANALYZE UPDATE t SET x = 1").is_none());
        assert!(classify_lexically(b"COPY t FROM STDIN").is_none());
        assert!(classify_lexically(b"WITH d AS (DELETE FROM t RETURNING *) SELECT 1").is_none());
        // PostgreSQL syntax sqlparser does not follow is still a read when it is a query.
        assert_eq!(
            classify_statement(b"SELECT c.oid FROM pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default"),
            Kind::Read
        );
    }

    #[test]
    fn classifies_each_statement_of_a_string() {
        let sql = b"BEGIN; UPDATE t SET x = 1; SELECT 2; COMMIT";
        let classified = classify(sql);
        let kinds: Vec<Kind> = classified.statements.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            vec![Kind::Begin, Kind::MayWrite, Kind::Read, Kind::Commit]
        );
        assert!(classified.may_write());
        assert_eq!(&sql[classified.statements[3].range.clone()], b"COMMIT");
    }

    #[test]
    fn a_plain_kind_is_the_classification_of_its_one_statement() {
        let decided: &[&[u8]] = &[
            b"SELECT abalance FROM pgbench_accounts WHERE aid = 61",
            b"  select 1 ;  ",
            b"UPDATE t SET x = 1;",
            b"DELETE FROM t WHERE id = 2",
            b"begin",
            b"START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            b"COMMIT",
            b"end",
            b"ROLLBACK TO SAVEPOINT a",
            b"ABORT",
            b"COMMIT PREPARED x",
            b"TRUNCATE t",
            b"",
            b" ;",
        ];
        for sql in decided {
            let text = String::from_utf8_lossy(sql);
            let kind = plain_kind(sql).unwrap_or_else(|| panic!("{text:?} is plain"));
            assert_eq!(kind, classify(sql).single_kind(), "{text:?}");
        }
        // What the scanner or the parser must decide is left to them.
        let undecided: &[&[u8]] = &[
            b"SELECT 1; DELETE FROM t",
            b"SELECT 'a;b'",
            b"SELECT f(1)",
            b"-- c\nSELECT 1",
            b"SELECT $1",
            b"WITH d AS (DELETE FROM t RETURNING *) SELECT 1",
            b"EXPLAIN ANALYZE UPDATE t SET x = 1",
            b"COPY t FROM STDIN",
        ];
        for sql in undecided {
            assert_eq!(plain_kind(sql), None, "{}", String::from_utf8_lossy(sql));
        }
    }
}
