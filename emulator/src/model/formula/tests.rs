//! What formulas compute: arithmetic at the result's scale, blanks, validation conditions, text, parent fields, dates and functions; and what the compiler refuses.

use super::*;
use chrono::{NaiveDate, TimeZone};

struct Row {
    values: Vec<Value>,
    parent: Option<(usize, &'static str, Value)>,
}

impl FormulaInputs for Row {
    fn field(&self, index: usize) -> Value {
        self.values.get(index).cloned().unwrap_or_default()
    }
    fn parent_field(&self, reference: usize, field: &str) -> Value {
        match &self.parent {
            Some((r, f, v)) if *r == reference && f.eq_ignore_ascii_case(field) => v.clone(),
            _ => Value::Null,
        }
    }
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
    }
}

fn object() -> ObjectDef {
    ObjectDef::from_json(
        r#"{"name": "Thing__c", "label": "Thing", "labelPlural": "Things", "keyPrefix": "a07",
        "fields": [
          {"name": "Amount__c", "label": "Amount", "type": "currency", "precision": 16, "scale": 2},
          {"name": "Tax__c", "label": "Tax", "type": "percent", "precision": 5, "scale": 2},
          {"name": "Status__c", "label": "Status", "type": "picklist"},
          {"name": "First__c", "label": "First", "type": "string", "length": 40},
          {"name": "Last__c", "label": "Last", "type": "string", "length": 80},
          {"name": "Due__c", "label": "Due", "type": "date"},
          {"name": "Account__c", "label": "Account", "type": "reference",
           "referenceTo": ["Account"], "relationshipName": "Account__r"}
        ]}"#,
    )
    .unwrap()
}

fn field(def: &ObjectDef, name: &str) -> FieldDef {
    def.field(name).unwrap().1.clone()
}

fn row(def: &ObjectDef, values: &[(&str, Value)]) -> Row {
    let mut row = Row {
        values: vec![Value::Null; def.fields.len()],
        parent: None,
    };
    for (name, v) in values {
        row.values[def.field(name).unwrap().0] = v.clone();
    }
    row
}

#[test]
fn arithmetic_rounds_to_the_result_scale() {
    let def = object();
    let f = Formula::compile("Amount__c * (1 + Tax__c / 100)", &def, true).unwrap();
    let r = row(
        &def,
        &[
            ("Amount__c", Value::Double(100.0)),
            ("Tax__c", Value::Double(7.25)),
        ],
    );
    assert_eq!(
        f.evaluate(&r, &field(&def, "Amount__c")),
        Value::Double(107.25)
    );
    let r = row(
        &def,
        &[
            ("Amount__c", Value::Double(10.0)),
            ("Tax__c", Value::Double(3.333)),
        ],
    );
    assert_eq!(
        f.evaluate(&r, &field(&def, "Amount__c")),
        Value::Double(10.33)
    );
}

#[test]
fn blanks_follow_the_treat_blanks_setting() {
    let def = object();
    let r = row(&def, &[("Amount__c", Value::Double(50.0))]);
    let as_zero = Formula::compile("Amount__c * (1 + Tax__c / 100)", &def, true).unwrap();
    assert_eq!(
        as_zero.evaluate(&r, &field(&def, "Amount__c")),
        Value::Double(50.0)
    );
    let as_blank = Formula::compile("Amount__c * (1 + Tax__c / 100)", &def, false).unwrap();
    assert_eq!(
        as_blank.evaluate(&r, &field(&def, "Amount__c")),
        Value::Null
    );
}

#[test]
fn validation_conditions() {
    let def = object();
    let rule = Formula::compile(
        "AND(Amount__c < 0, NOT(ISPICKVAL(Status__c, 'Void')))",
        &def,
        false,
    )
    .unwrap();
    let negative = |status: &str| {
        row(
            &def,
            &[
                ("Amount__c", Value::Double(-1.0)),
                ("Status__c", Value::text(status)),
            ],
        )
    };
    assert!(rule.is_true(&negative("Draft")));
    assert!(!rule.is_true(&negative("Void")));
    assert!(!rule.is_true(&row(&def, &[("Status__c", Value::text("Draft"))])));
    assert!(!rule.is_true(&row(&def, &[("Amount__c", Value::Double(0.0))])));
}

#[test]
fn text_concatenation_and_compound_names() {
    let def = object();
    let name = Formula::compile("TRIM(First__c & ' ' & Last__c)", &def, false).unwrap();
    let target = field(&def, "Last__c");
    let r = row(
        &def,
        &[
            ("First__c", Value::text("Ada")),
            ("Last__c", Value::text("Lovelace")),
        ],
    );
    assert_eq!(name.evaluate(&r, &target), Value::text("Ada Lovelace"));
    let r = row(&def, &[("Last__c", Value::text("Lovelace"))]);
    assert_eq!(name.evaluate(&r, &target), Value::text("Lovelace"));
    assert_eq!(name.evaluate(&row(&def, &[]), &target), Value::Null);
}

#[test]
fn cross_object_references_read_the_parent() {
    let def = object();
    let f = Formula::compile("Account__r.Name", &def, false).unwrap();
    let mut r = row(&def, &[]);
    let reference = def.field("Account__c").unwrap().0;
    r.parent = Some((reference, "Name", Value::text("Acme")));
    assert_eq!(f.evaluate(&r, &field(&def, "Last__c")), Value::text("Acme"));
}

#[test]
fn dates_and_functions() {
    let def = object();
    let due = NaiveDate::from_ymd_opt(2024, 3, 11).unwrap();
    let r = row(&def, &[("Due__c", Value::Date(due))]);
    let days = Formula::compile("Due__c - TODAY()", &def, false).unwrap();
    assert_eq!(
        days.evaluate(&r, &field(&def, "Amount__c")),
        Value::Double(10.0)
    );
    let later = Formula::compile("Due__c + 5", &def, false).unwrap();
    let target = field(&def, "Due__c");
    assert_eq!(
        later.evaluate(&r, &target),
        Value::Date(NaiveDate::from_ymd_opt(2024, 3, 16).unwrap())
    );
    let f = Formula::compile(
        "IF(ISBLANK(Status__c), 'none', BLANKVALUE(First__c, \"x\"))",
        &def,
        false,
    )
    .unwrap();
    assert_eq!(
        f.evaluate(&r, &field(&def, "First__c")),
        Value::text("none")
    );
    let f = Formula::compile(
        "ROUND(2.675, 2) + ABS(-1) + LEN('abc') * 2 ^ 2",
        &def,
        false,
    )
    .unwrap();
    assert_eq!(
        f.evaluate(&r, &field(&def, "Amount__c")),
        Value::Double(15.68)
    );
}

#[test]
fn refuses_what_it_cannot_evaluate() {
    let def = object();
    for bad in [
        "Nope__c + 1",
        "Account__r.Owner.Name",
        "Missing__r.Name",
        "VLOOKUP(1)",
        "IF(TRUE, 1)",
        "(1 + 2",
        "1 +",
        "'open",
        "1 # 2",
        "1 2",
    ] {
        assert!(Formula::compile(bad, &def, false).is_err(), "{bad}");
    }
}
