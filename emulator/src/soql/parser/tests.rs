//! The parser's case table: every operator, literal and clause, precedence, and syntax
//! errors with Salesforce's row and column.

use super::*;
use crate::soql::Position;
use crate::soql::ast::{CompareOp as Op, LiteralKind as L};

fn path(parts: &[&str], offset: usize) -> FieldPath {
    FieldPath {
        parts: parts.iter().map(|p| p.to_string()).collect(),
        offset,
    }
}

fn filter(q: &str) -> Condition {
    parse(q).unwrap().filter.unwrap()
}

/// The single comparison in `WHERE`, as (operator, literal kind).
fn comparison(q: &str) -> (Op, L) {
    match filter(q) {
        Condition::Compare { op, value, .. } => (op, value.kind),
        other => panic!("{q}: {other:?}"),
    }
}

#[test]
fn select_from() {
    let q = parse("SELECT Id, Name, Account.Name FROM Contact").unwrap();
    assert_eq!(
        q.select,
        vec![
            SelectItem::Field(path(&["Id"], 7)),
            SelectItem::Field(path(&["Name"], 11)),
            SelectItem::Field(path(&["Account", "Name"], 17)),
        ]
    );
    assert_eq!(q.from, "Contact");
    assert_eq!(q.from_offset, 35);
    assert_eq!(q.alias, None);
    assert_eq!(q.filter, None);
    assert!(q.order_by.is_empty());
    assert_eq!((q.limit, q.offset), (None, None));
}

#[test]
fn keywords_ignore_case_and_whitespace() {
    let q =
        parse("select id\n  from   account\twhere name = 'x' order by name desc limit 5").unwrap();
    assert_eq!(q.from, "account");
    assert_eq!(q.limit, Some(5));
    assert!(q.order_by[0].descending);
}

#[test]
fn count() {
    let q = parse("SELECT COUNT() FROM Account").unwrap();
    assert_eq!(q.select, vec![SelectItem::Count { offset: 7 }]);
    let q = parse("select count() from Account where Name != null").unwrap();
    assert_eq!(q.select, vec![SelectItem::Count { offset: 7 }]);
}

#[test]
fn alias() {
    let q = parse("SELECT a.Name FROM Account a WHERE a.Name != null").unwrap();
    assert_eq!(q.alias.as_deref(), Some("a"));
    let q = parse("SELECT Name FROM Account ORDER BY Name").unwrap();
    assert_eq!(q.alias, None);
    let q = parse("SELECT Name FROM Account OFFSET 5").unwrap();
    assert_eq!((q.alias, q.offset), (None, Some(5)));
}

#[test]
fn every_comparison_operator() {
    for (text, op) in [
        ("=", Op::Eq),
        ("!=", Op::Ne),
        ("<>", Op::Ne),
        ("<", Op::Lt),
        ("<=", Op::Le),
        (">", Op::Gt),
        (">=", Op::Ge),
    ] {
        let q = format!("SELECT Id FROM Account WHERE NumberOfEmployees {text} 10");
        assert_eq!(comparison(&q), (op, L::Number("10".into())), "{text}");
        let tight = format!("SELECT Id FROM Account WHERE NumberOfEmployees{text}10");
        assert_eq!(comparison(&tight).0, op, "{text} without spaces");
    }
}

#[test]
fn every_literal() {
    let cases: Vec<(&str, L)> = vec![
        ("null", L::Null),
        ("NULL", L::Null),
        ("true", L::Bool(true)),
        ("FALSE", L::Bool(false)),
        ("'Acme'", L::String("Acme".into())),
        (r"'Bob\'s \\ BBQ'", L::String(r"Bob\'s \\ BBQ".into())),
        ("''", L::String(String::new())),
        ("42", L::Number("42".into())),
        ("-42", L::Number("-42".into())),
        ("+42", L::Number("+42".into())),
        ("3.25", L::Number("3.25".into())),
        ("-0.5", L::Number("-0.5".into())),
        ("2024-01-31", L::Date("2024-01-31".into())),
        (
            "2024-01-31T10:00:00Z",
            L::DateTime("2024-01-31T10:00:00Z".into()),
        ),
        (
            "2024-01-31T10:00:00.000Z",
            L::DateTime("2024-01-31T10:00:00.000Z".into()),
        ),
        (
            "2024-01-31T10:00:00+01:00",
            L::DateTime("2024-01-31T10:00:00+01:00".into()),
        ),
        (
            "2024-01-31T10:00:00-08:00",
            L::DateTime("2024-01-31T10:00:00-08:00".into()),
        ),
        ("TODAY", L::Relative(RelativeDate::Today)),
        ("yesterday", L::Relative(RelativeDate::Yesterday)),
        ("TOMORROW", L::Relative(RelativeDate::Tomorrow)),
        ("LAST_N_DAYS:30", L::Relative(RelativeDate::LastNDays(30))),
        ("last_n_days : 7", L::Relative(RelativeDate::LastNDays(7))),
        ("NEXT_N_DAYS:3", L::Relative(RelativeDate::NextNDays(3))),
        ("N_DAYS_AGO:2", L::Relative(RelativeDate::NDaysAgo(2))),
        ("LAST_90_DAYS", L::Relative(RelativeDate::Last90Days)),
        ("THIS_MONTH", L::Relative(RelativeDate::ThisMonth)),
        ("LAST_YEAR", L::Relative(RelativeDate::LastYear)),
    ];
    for (text, expected) in cases {
        let q = format!("SELECT Id FROM Account WHERE F = {text}");
        assert_eq!(comparison(&q).1, expected, "{text}");
    }
}

#[test]
fn in_and_not_in() {
    match filter("SELECT Id FROM Account WHERE Id IN ('a', 'b')") {
        Condition::In {
            negated, values, ..
        } => {
            assert!(!negated);
            assert_eq!(values.len(), 2);
            assert_eq!(values[1].offset, 41);
        }
        other => panic!("{other:?}"),
    }
    match filter("SELECT Id FROM Account WHERE Industry NOT IN ('Energy', null)") {
        Condition::In {
            negated, values, ..
        } => {
            assert!(negated);
            assert_eq!(values[1].kind, L::Null);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn like_includes_excludes() {
    assert!(matches!(
        filter("SELECT Id FROM Account WHERE Name LIKE 'Ac%'"),
        Condition::Like { pattern: Literal { kind: L::String(p), .. }, .. } if p == "Ac%"
    ));
    assert!(matches!(
        filter("SELECT Id FROM Lead WHERE Tags__c INCLUDES ('a;b', 'c')"),
        Condition::Includes { excludes: false, values, .. } if values.len() == 2
    ));
    assert!(matches!(
        filter("SELECT Id FROM Lead WHERE Tags__c excludes ('a')"),
        Condition::Includes { excludes: true, .. }
    ));
}

#[test]
fn and_or_not_and_parentheses() {
    let c = filter("SELECT Id FROM A WHERE X = 1 AND Y = 2 AND Z = 3");
    assert!(matches!(&c, Condition::And(terms) if terms.len() == 3));
    let c = filter("SELECT Id FROM A WHERE X = 1 OR Y = 2");
    assert!(matches!(&c, Condition::Or(terms) if terms.len() == 2));
    let c = filter("SELECT Id FROM A WHERE (X = 1 OR Y = 2) AND Z = 3");
    match c {
        Condition::And(terms) => {
            assert!(matches!(&terms[0], Condition::Or(inner) if inner.len() == 2));
            assert!(matches!(&terms[1], Condition::Compare { .. }));
        }
        other => panic!("{other:?}"),
    }
    let c = filter("SELECT Id FROM A WHERE X = 1 OR (Y = 2 AND NOT Z = 3)");
    match c {
        Condition::Or(terms) => match &terms[1] {
            Condition::And(inner) => assert!(matches!(&inner[1], Condition::Not(_))),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // NOT takes the condition right after it, not the rest of the chain.
    let c = filter("SELECT Id FROM A WHERE NOT X = 1 AND Y = 2");
    match c {
        Condition::And(terms) => assert!(matches!(&terms[0], Condition::Not(_))),
        other => panic!("{other:?}"),
    }
    let c = filter("SELECT Id FROM A WHERE NOT (X = 1 OR Y = 2)");
    assert!(matches!(c, Condition::Not(inner) if matches!(*inner, Condition::Or(_))));
    let c = filter("SELECT Id FROM A WHERE ((X = 1))");
    assert!(matches!(c, Condition::Compare { .. }));
}

#[test]
fn order_by_limit_offset() {
    let q = parse(
        "SELECT Id FROM Account ORDER BY Name, CreatedDate DESC, Industry ASC NULLS LAST, \
         Owner.Name DESC NULLS FIRST LIMIT 10 OFFSET 20",
    )
    .unwrap();
    let keys: Vec<(String, bool, bool)> = q
        .order_by
        .iter()
        .map(|o| (o.field.dotted(), o.descending, o.nulls_first()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("Name".to_string(), false, true),
            ("CreatedDate".to_string(), true, false),
            ("Industry".to_string(), false, false),
            ("Owner.Name".to_string(), true, true),
        ]
    );
    assert_eq!((q.limit, q.offset), (Some(10), Some(20)));
}

/// Queries Salesforce refuses as malformed: the reason, and the row and column its caret points at.
const SYNTAX_ERRORS: &[(&str, &str, usize, usize)] = &[
    ("SELECT Id, FROM Bar__c", "unexpected token: 'FROM'", 1, 12),
    (
        "SELECT Id FROM Bar__c WHERE",
        "unexpected token: '<EOF>'",
        1,
        28,
    ),
    (
        "SELECT Id FROM Account WHERE ",
        "unexpected token: '<EOF>'",
        1,
        30,
    ),
    ("SELECT FROM Account", "unexpected token: 'FROM'", 1, 8),
    ("Id FROM Account", "unexpected token: 'Id'", 1, 1),
    ("", "unexpected token: '<EOF>'", 1, 1),
    ("SELECT Id FROM", "unexpected token: '<EOF>'", 1, 15),
    ("SELECT Id Account", "unexpected token: 'Account'", 1, 11),
    (
        "SELECT Id FROM Account WHERE Name",
        "unexpected token: '<EOF>'",
        1,
        34,
    ),
    (
        "SELECT Id FROM Account WHERE Name = ",
        "unexpected token: '<EOF>'",
        1,
        37,
    ),
    (
        "SELECT Id FROM Account WHERE Name == 'x'",
        "unexpected token: '='",
        1,
        36,
    ),
    (
        "SELECT Id FROM Account WHERE Name = bogus",
        "unexpected token: 'bogus'",
        1,
        37,
    ),
    (
        "SELECT Id FROM Account WHERE A = 1 AND B = 2 OR C = 3",
        "unexpected token: 'OR'",
        1,
        46,
    ),
    (
        "SELECT Id FROM Account WHERE A = 1 OR B = 2 AND C = 3",
        "unexpected token: 'AND'",
        1,
        45,
    ),
    (
        "SELECT Id FROM Account WHERE (A = 1",
        "unexpected token: '<EOF>'",
        1,
        36,
    ),
    (
        "SELECT Id FROM Account WHERE A IN ()",
        "unexpected token: ')'",
        1,
        36,
    ),
    (
        "SELECT Id FROM Account WHERE A IN 'x'",
        "unexpected token: ''x''",
        1,
        35,
    ),
    (
        "SELECT Id FROM Account LIMIT",
        "unexpected token: '<EOF>'",
        1,
        29,
    ),
    (
        "SELECT Id FROM Account LIMIT -1",
        "unexpected token: '-1'",
        1,
        30,
    ),
    (
        "SELECT Id FROM Account LIMIT 1.5",
        "unexpected token: '1.5'",
        1,
        30,
    ),
    (
        "SELECT Id FROM Account ORDER Name",
        "unexpected token: 'Name'",
        1,
        30,
    ),
    (
        "SELECT Id FROM Account ORDER BY Name NULLS",
        "unexpected token: '<EOF>'",
        1,
        43,
    ),
    (
        "SELECT Id FROM Account LIMIT 5 LIMIT 5",
        "unexpected token: 'LIMIT'",
        1,
        32,
    ),
    (
        "SELECT Id FROM Account OFFSET 5 LIMIT 5",
        "unexpected token: 'LIMIT'",
        1,
        33,
    ),
    (
        "SELECT COUNT(Id) FROM Account",
        "unexpected token: 'Id'",
        1,
        14,
    ),
    (
        "SELECT COUNT(), Id FROM Account",
        "unexpected token: ','",
        1,
        15,
    ),
    (
        "SELECT Id, COUNT() FROM Account",
        "unexpected token: 'COUNT'",
        1,
        12,
    ),
    (
        "SELECT toLabel(Status) FROM Lead",
        "unexpected token: '('",
        1,
        15,
    ),
    (
        "SELECT Id FROM Account GROUP BY Name",
        "unexpected token: 'GROUP'",
        1,
        24,
    ),
    (
        "SELECT Id FROM Account WHERE Date__c = LAST_N_DAYS",
        "unexpected token: '<EOF>'",
        1,
        51,
    ),
    (
        "SELECT Id FROM Account WHERE Date__c = LAST_N_DAYS:x",
        "unexpected token: 'x'",
        1,
        52,
    ),
    (
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)",
        "unexpected token: 'SELECT'",
        1,
        37,
    ),
    (
        "SELECT Id\nFROM Account\nWHERE Name = = 'x'",
        "unexpected token: '='",
        3,
        14,
    ),
    (
        "SELECT Account. FROM Contact",
        "unexpected token: 'FROM'",
        1,
        17,
    ),
];

/// Syntax errors: (query, reason, row, column).
#[test]
fn syntax_errors_point_where_salesforce_points() {
    let cases = SYNTAX_ERRORS;
    for (query, reason, row, column) in cases {
        let e = parse(query).unwrap_err();
        assert_eq!(e.error_code, ErrorCode::MalformedQuery, "{query}");
        assert_eq!(e.reason(), *reason, "{query}");
        assert_eq!(
            e.position,
            Some(Position {
                row: *row,
                column: *column
            }),
            "{query}"
        );
    }
}

#[test]
fn syntax_error_message_is_framed() {
    let e = parse("SELECT Id FROM Account WHERE").unwrap_err();
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Account WHERE\n                            ^\nERROR at Row:1:Column:29\nunexpected token: '<EOF>'"
    );
}

#[test]
fn limit_beyond_32_bits_is_out_of_range() {
    let e = parse("SELECT Id FROM Account LIMIT 2147483648").unwrap_err();
    assert_eq!(e.error_code, ErrorCode::MalformedQuery);
    assert_eq!(e.reason(), "numeric value out of range: 2147483648");
}
