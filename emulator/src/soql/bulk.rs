//! What Bulk API 2.0 query refuses that the REST query resource serves (or that the
//! engine's grammar does not know at all): a scan of the query's tokens before it is
//! parsed, so that a Bulk client gets Bulk's refusal, not a syntax error.
//!
//! Salesforce documents the list ("Understanding Bulk API 2.0 Query", SOQL
//! considerations, API 47.0 to 64.0): `GROUP BY`, `OFFSET` and `TYPEOF` clauses, aggregate
//! functions such as `COUNT()`, compound address and geolocation fields, and
//! parent-to-child relationship queries. Compound fields are only known once the query is
//! bound, so the org checks them (see `org::bulk`).
//!
//! The wording of the refusals, as far as public captures show it (a 400 with the REST
//! error array, at job creation):
//! - parent-to-child subqueries: `Aggregate Relationships not supported in Bulk V2 Query
//!   with CSV content type` (OpenFn/adaptors#395, API 59.0); Bulk 1.0 sent the same text
//!   without "V2" under `FeatureNotEnabled`. The `errorCode` for 2.0 is not in the capture;
//!   `API_ERROR` is assumed, as for compound fields;
//! - compound fields: `API_ERROR` / `Selecting compound data not supported in Bulk Query`
//!   (airbytehq/airbyte's job-creation handler and its tests; a TypeScript client's test
//!   quotes `[API_ERROR] Selecting compound data not supported in Bulk Query` from Bulk v2);
//! - base64 fields: `Blob field not supported in Bulk V2 Query with CSV content type`
//!   (quoted as live-confirmed by a DuckDB extension's notes; code assumed `API_ERROR`).
//!
//! Unverified (no capture found; worded like the ones above): the messages for aggregate
//! functions, `GROUP BY`, `OFFSET` and `TYPEOF`.

use super::lexer::{Token, TokenKind, tokenize};

/// Why Bulk API query refuses a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkRefusal {
    /// `(SELECT … FROM Children)` in the `SELECT` list.
    ParentToChild,
    /// `COUNT()`, `COUNT(Id)`, `SUM(x)`, `MAX(x)`, …
    Aggregate,
    GroupBy,
    Offset,
    TypeOf,
    /// An address or geolocation field.
    CompoundField,
    /// A base64 (blob) field.
    Blob,
}

impl BulkRefusal {
    /// The `errorCode` of the 400 answer.
    pub fn error_code(self) -> &'static str {
        "API_ERROR"
    }

    /// The message of the 400 answer.
    pub fn message(self) -> &'static str {
        match self {
            BulkRefusal::ParentToChild => {
                "Aggregate Relationships not supported in Bulk V2 Query with CSV content type"
            }
            BulkRefusal::Aggregate => "Aggregate queries are not supported in Bulk V2 Query",
            BulkRefusal::GroupBy => "GROUP BY is not supported in Bulk V2 Query",
            BulkRefusal::Offset => "OFFSET is not supported in Bulk V2 Query",
            BulkRefusal::TypeOf => "TYPEOF is not supported in Bulk V2 Query",
            BulkRefusal::CompoundField => "Selecting compound data not supported in Bulk Query",
            BulkRefusal::Blob => "Blob field not supported in Bulk V2 Query with CSV content type",
        }
    }
}

/// Aggregate functions of SOQL.
const AGGREGATES: &[&str] = &["AVG", "COUNT", "COUNT_DISTINCT", "MAX", "MIN", "SUM"];

/// The first clause of `query` Bulk query refuses, found from its tokens alone; `None`
/// when there is none or the query does not even tokenize (the parser then reports the
/// syntax error as the REST resource would).
pub fn bulk_refusal(query: &str) -> Option<BulkRefusal> {
    let tokens = tokenize(query).ok()?;
    let keyword = |t: &Token, word: &str| t.is_keyword(query, word);
    let mut depth = 0usize;
    let mut in_select_list = false;
    for (i, token) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1);
        match token.kind {
            TokenKind::LParen => {
                // A subquery in the SELECT list reads a child relationship; one in WHERE
                // is a semi-join, which Bulk query serves.
                if in_select_list && next.is_some_and(|n| keyword(n, "SELECT")) {
                    return Some(BulkRefusal::ParentToChild);
                }
                depth += 1;
            }
            TokenKind::RParen => depth = depth.saturating_sub(1),
            TokenKind::Ident => {
                if keyword(token, "SELECT") {
                    in_select_list = depth == 0;
                } else if keyword(token, "FROM") && depth == 0 {
                    in_select_list = false;
                } else if keyword(token, "TYPEOF") {
                    return Some(BulkRefusal::TypeOf);
                } else if keyword(token, "GROUP") && next.is_some_and(|n| keyword(n, "BY")) {
                    return Some(BulkRefusal::GroupBy);
                } else if keyword(token, "OFFSET")
                    && next.is_some_and(|n| n.kind == TokenKind::Number)
                {
                    return Some(BulkRefusal::Offset);
                } else if next.is_some_and(|n| n.kind == TokenKind::LParen)
                    && AGGREGATES.iter().any(|a| keyword(token, a))
                {
                    return Some(BulkRefusal::Aggregate);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_bulk_query_does_not_support() {
        let cases = [
            (
                "SELECT Name, (SELECT LastName FROM Contacts) FROM Account",
                Some(BulkRefusal::ParentToChild),
            ),
            ("SELECT COUNT() FROM Account", Some(BulkRefusal::Aggregate)),
            (
                "SELECT MAX(AnnualRevenue) FROM Account",
                Some(BulkRefusal::Aggregate),
            ),
            (
                "SELECT Industry FROM Account GROUP BY Industry",
                Some(BulkRefusal::GroupBy),
            ),
            (
                "SELECT Id FROM Account ORDER BY Id LIMIT 5 OFFSET 10",
                Some(BulkRefusal::Offset),
            ),
            (
                "SELECT TYPEOF What WHEN Account THEN Name END FROM Event",
                Some(BulkRefusal::TypeOf),
            ),
            ("SELECT Id, Name, Owner.Name FROM Account", None),
            (
                "SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account)",
                None,
            ),
            ("SELECT Id FROM Account WHERE Name = 'GROUP BY x'", None),
            ("SELECT Id FROM Account ORDER BY Name LIMIT 10", None),
        ];
        for (query, expected) in cases {
            assert_eq!(bulk_refusal(query), expected, "{query}");
        }
    }
}
