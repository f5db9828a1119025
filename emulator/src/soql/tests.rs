//! The engine end to end over a small in-test org: filters, ordering, nulls, `LIKE`,
//! `INCLUDES`, dates, relationship fields, `COUNT()`, paging bounds, the store-facing
//! Id scan, rendering, and the errors of binding.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::model::{ObjectDef, Record, Value};

const USER: &str = r#"{
    "name": "User", "label": "User", "labelPlural": "Users", "keyPrefix": "005",
    "fields": [
        {"name": "Username", "label": "Username", "type": "string", "length": 80},
        {"name": "Name", "label": "Full Name", "type": "string", "length": 121, "nameField": true}
    ]
}"#;

const ACCOUNT: &str = r#"{
    "name": "Account", "label": "Account", "labelPlural": "Accounts", "keyPrefix": "001",
    "fields": [
        {"name": "Name", "label": "Account Name", "type": "string", "length": 255, "nameField": true},
        {"name": "Industry", "label": "Industry", "type": "picklist", "length": 255},
        {"name": "AnnualRevenue", "label": "Annual Revenue", "type": "currency", "precision": 18},
        {"name": "NumberOfEmployees", "label": "Employees", "type": "int", "digits": 8},
        {"name": "Description", "label": "Description", "type": "textarea", "length": 32000},
        {"name": "OwnerId", "label": "Owner ID", "type": "reference", "referenceTo": ["User"], "relationshipName": "Owner"},
        {"name": "BillingCity", "label": "Billing City", "type": "string", "length": 40, "compoundFieldName": "BillingAddress"},
        {"name": "BillingAddress", "label": "Billing Address", "type": "address"}
    ]
}"#;

const CONTACT: &str = r#"{
    "name": "Contact", "label": "Contact", "labelPlural": "Contacts", "keyPrefix": "003",
    "fields": [
        {"name": "AccountId", "label": "Account ID", "type": "reference", "referenceTo": ["Account"], "relationshipName": "Account"},
        {"name": "LastName", "label": "Last Name", "type": "string", "length": 80},
        {"name": "Birthdate", "label": "Birthdate", "type": "date"},
        {"name": "DoNotCall", "label": "Do Not Call", "type": "boolean"},
        {"name": "Interests__c", "label": "Interests", "type": "multipicklist", "length": 4099, "custom": true}
    ]
}"#;

const INVOICE: &str = r#"{
    "name": "Invoice__c", "label": "Invoice", "labelPlural": "Invoices", "keyPrefix": "a01", "custom": true,
    "fields": [
        {"name": "Name", "label": "Invoice Number", "type": "string", "length": 80, "nameField": true},
        {"name": "Account__c", "label": "Account", "type": "reference", "referenceTo": ["Account"], "relationshipName": "Account__r", "custom": true},
        {"name": "Amount__c", "label": "Amount", "type": "currency", "precision": 16, "scale": 2, "custom": true},
        {"name": "Account_Name__c", "label": "Account Name", "type": "string", "custom": true,
         "calculated": true, "calculatedFormula": "Account__r.Name"}
    ]
}"#;

/// Name, industry, revenue, employees, owner, day of creation.
type AccountRow<'a> = (
    &'a str,
    Option<&'a str>,
    Option<f64>,
    Option<i64>,
    &'a str,
    u32,
);

/// An org in miniature: definitions and records by Id, with one formula computed on read.
struct TestOrg {
    objects: Vec<ObjectDef>,
    records: BTreeMap<String, (usize, Record)>,
}

fn id(prefix: &str, n: u32) -> String {
    canonical_id(&format!("{prefix}{n:012}")).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 15, 12, 0, 0).unwrap()
}

fn at(day: u32, hour: u32) -> Value {
    Value::DateTime(Utc.with_ymd_and_hms(2024, 3, day, hour, 0, 0).unwrap())
}

impl TestOrg {
    fn new() -> TestOrg {
        let objects = [USER, ACCOUNT, CONTACT, INVOICE]
            .iter()
            .map(|text| ObjectDef::from_json(text).unwrap())
            .collect();
        let mut org = TestOrg {
            objects,
            records: BTreeMap::new(),
        };
        let (ann, bob) = (id("005", 1), id("005", 2));
        org.insert(
            "User",
            &[
                ("Id", Value::text(ann.as_str())),
                ("Name", Value::text("Ann Admin")),
            ],
        );
        org.insert(
            "User",
            &[
                ("Id", Value::text(bob.as_str())),
                ("Name", Value::text("Bob")),
            ],
        );
        let accounts: [AccountRow; 4] = [
            ("Acme", Some("Energy"), Some(5000.0), Some(10), &ann, 1),
            ("beta corp", Some("Banking"), None, Some(200), &bob, 2),
            ("Gamma 100%", None, Some(150.5), None, &ann, 3),
            ("Älter", Some("Energy"), Some(75.0), Some(3), &bob, 4),
        ];
        for (n, (name, industry, revenue, employees, owner, day)) in
            accounts.into_iter().enumerate()
        {
            let opt_text = |v: Option<&str>| v.map_or(Value::Null, Value::text);
            org.insert(
                "Account",
                &[
                    ("Id", Value::text(id("001", n as u32 + 1))),
                    ("Name", Value::text(name)),
                    ("Industry", opt_text(industry)),
                    ("AnnualRevenue", revenue.map_or(Value::Null, Value::Double)),
                    (
                        "NumberOfEmployees",
                        employees.map_or(Value::Null, Value::Int),
                    ),
                    ("OwnerId", Value::text(owner)),
                    ("BillingCity", Value::text("Paris")),
                    ("CreatedDate", at(day, 9)),
                    ("SystemModstamp", at(day, 10)),
                ],
            );
        }
        let date = |m, d| Value::Date(NaiveDate::from_ymd_opt(2024, m, d).unwrap());
        let contacts = [
            (
                Some(1),
                "Smith",
                date(3, 15),
                Value::Bool(true),
                "Golf;Tennis",
            ),
            (Some(1), "jones", date(3, 14), Value::Bool(false), "Tennis"),
            (Some(2), "Adams", date(1, 2), Value::Null, ""),
            (
                None,
                "Orphan",
                Value::Null,
                Value::Bool(false),
                "Chess;Golf",
            ),
        ];
        for (n, (account, last, birth, dnc, interests)) in contacts.into_iter().enumerate() {
            org.insert(
                "Contact",
                &[
                    ("Id", Value::text(id("003", n as u32 + 1))),
                    (
                        "AccountId",
                        account.map_or(Value::Null, |a| Value::text(id("001", a))),
                    ),
                    ("LastName", Value::text(last)),
                    ("Birthdate", birth),
                    ("DoNotCall", dnc),
                    (
                        "Interests__c",
                        if interests.is_empty() {
                            Value::Null
                        } else {
                            Value::text(interests)
                        },
                    ),
                    ("CreatedDate", at(13 + n as u32, 8)),
                ],
            );
        }
        for (n, (account, amount)) in [(Some(1), 100.0), (Some(2), 250.0), (None, 5.0)]
            .into_iter()
            .enumerate()
        {
            org.insert(
                "Invoice__c",
                &[
                    ("Id", Value::text(id("a01", n as u32 + 1))),
                    ("Name", Value::text(format!("INV-{n}"))),
                    (
                        "Account__c",
                        account.map_or(Value::Null, |a| Value::text(id("001", a))),
                    ),
                    ("Amount__c", Value::Double(amount)),
                ],
            );
        }
        // One contact in the recycle bin.
        org.insert(
            "Contact",
            &[
                ("Id", Value::text(id("003", 9))),
                ("LastName", Value::text("Deleted")),
                ("IsDeleted", Value::Bool(true)),
            ],
        );
        org
    }

    fn def(&self, name: &str) -> &ObjectDef {
        self.object(name).unwrap()
    }

    fn insert(&mut self, object: &str, values: &[(&str, Value)]) {
        let index = self.objects.iter().position(|o| o.name == object).unwrap();
        let def = &self.objects[index];
        let mut record = Record::empty(def.fields.len());
        for (name, value) in values {
            record.values[def.field(name).unwrap().0] = value.clone();
        }
        if let Some(is_deleted) = def.system.is_deleted
            && record.values[is_deleted].is_null()
        {
            record.values[is_deleted] = Value::Bool(false);
        }
        let key = record.values[def.system.id].as_str().unwrap().to_string();
        self.records.insert(key, (index, record));
    }

    /// Every record of `object`, in Id order, as the store hands candidates over.
    fn all<'a>(&'a self, object: &'a ObjectDef) -> impl Iterator<Item = &'a Record> + 'a {
        self.records
            .values()
            .filter(move |(i, _)| self.objects[*i].name == object.name)
            .map(|(_, r)| r)
    }

    fn query(&self, text: &str) -> Result<(Plan, Vec<serde_json::Value>), SoqlError> {
        self.run(text, false)
    }

    fn run(
        &self,
        text: &str,
        include_deleted: bool,
    ) -> Result<(Plan, Vec<serde_json::Value>), SoqlError> {
        let plan = compile(
            text,
            self,
            &QueryOptions {
                now: now(),
                include_deleted,
            },
        )?;
        let object = self.def(plan.object());
        let records = plan
            .select(self, object, self.all(object))
            .into_iter()
            .map(|r| plan.projection().render(self, object, r, "62.0"))
            .collect();
        Ok((plan, records))
    }

    /// The values of one field of the query's records, in order.
    fn column(&self, text: &str, field: &str) -> Vec<serde_json::Value> {
        let (_, records) = self.query(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        records.iter().map(|r| r[field].clone()).collect()
    }

    fn names(&self, text: &str) -> Vec<String> {
        let field = if text.contains("FROM Contact") {
            "LastName"
        } else {
            "Name"
        };
        self.column(text, field)
            .into_iter()
            .map(|v| v.as_str().unwrap_or("<null>").to_string())
            .collect()
    }

    fn error(&self, text: &str) -> SoqlError {
        match self.query(text) {
            Ok(_) => panic!("{text} should fail"),
            Err(e) => e,
        }
    }
}

impl Catalog for TestOrg {
    fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }
}

impl RecordAccess for TestOrg {
    fn value<'a>(
        &'a self,
        object: &'a ObjectDef,
        record: &'a Record,
        field: usize,
    ) -> Cow<'a, Value> {
        if object.fields[field].name == "Account_Name__c" {
            let (account_field, _) = object.field("Account__c").unwrap();
            let name = self
                .parent(object, record, account_field)
                .map(|(o, r)| r.get(o.field("Name").unwrap().0).clone())
                .unwrap_or(Value::Null);
            return Cow::Owned(name);
        }
        Cow::Borrowed(record.get(field))
    }

    fn parent<'a>(
        &'a self,
        _object: &'a ObjectDef,
        record: &'a Record,
        reference: usize,
    ) -> Option<(&'a ObjectDef, &'a Record)> {
        let id = record.get(reference).as_str()?;
        self.records.get(id).map(|(i, r)| (&self.objects[*i], r))
    }

    fn field_json(&self, object: &ObjectDef, record: &Record, field: usize) -> serde_json::Value {
        if object.fields[field].name == "BillingAddress" {
            let city = record.get(object.field("BillingCity").unwrap().0);
            return json!({"city": city.as_str()});
        }
        crate::model::value_to_json(&self.value(object, record, field), &object.fields[field])
    }
}

#[test]
fn renders_records_with_attributes_and_canonical_names() {
    let org = TestOrg::new();
    let (_, records) = org
        .query("select name, ID, annualrevenue, numberofemployees, createddate, billingaddress from account where name = 'acme'")
        .unwrap();
    let acme = id("001", 1);
    assert_eq!(
        records,
        vec![json!({
            "attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{acme}")},
            "Name": "Acme",
            "Id": acme,
            "AnnualRevenue": 5000.0,
            "NumberOfEmployees": 10,
            "CreatedDate": "2024-03-01T09:00:00.000+0000",
            "BillingAddress": {"city": "Paris"},
        })]
    );
    // Keys keep the order Salesforce writes them in: attributes, then SELECT order.
    let keys: Vec<&String> = records[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "attributes",
            "Name",
            "Id",
            "AnnualRevenue",
            "NumberOfEmployees",
            "CreatedDate",
            "BillingAddress"
        ]
    );
}

#[test]
fn parent_fields_nest_under_the_relationship() {
    let org = TestOrg::new();
    let (_, records) = org
        .query("SELECT Account.Name, LastName, account.industry, Account.Owner.Name FROM Contact ORDER BY LastName")
        .unwrap();
    let acme = id("001", 1);
    assert_eq!(
        records[0],
        json!({
            "attributes": {"type": "Contact", "url": format!("/services/data/v62.0/sobjects/Contact/{}", id("003", 3))},
            "Account": {
                "attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{}", id("001", 2))},
                "Name": "beta corp",
                "Industry": "Banking",
                "Owner": {
                    "attributes": {"type": "User", "url": format!("/services/data/v62.0/sobjects/User/{}", id("005", 2))},
                    "Name": "Bob",
                },
            },
            "LastName": "Adams",
        })
    );
    assert_eq!(
        records[1]["Account"]["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/Account/{acme}")
    );
    // An empty lookup renders as null.
    let orphan = records.iter().find(|r| r["LastName"] == "Orphan").unwrap();
    assert_eq!(orphan["Account"], serde_json::Value::Null);
}

#[test]
fn custom_relationships_and_formulas() {
    let org = TestOrg::new();
    let (_, records) = org
        .query("SELECT Name, Account__r.Name, Account_Name__c FROM Invoice__c WHERE Account_Name__c != null ORDER BY Account_Name__c DESC")
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["Account__r"]["Name"], "beta corp");
    assert_eq!(records[0]["Account_Name__c"], "beta corp");
    assert_eq!(records[1]["Account_Name__c"], "Acme");
    assert_eq!(
        org.names("SELECT Name FROM Invoice__c WHERE Account__r.Name LIKE 'ac%'"),
        ["INV-0"]
    );
}

#[test]
fn text_filters_ignore_case() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name = 'ACME'"),
        ["Acme"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name = 'älter'"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name != 'acme'"),
        ["beta corp", "Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name < 'c' ORDER BY Name"),
        ["Acme", "beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name >= 'BETA CORP' AND Name <= 'gamma 100%'"),
        ["beta corp", "Gamma 100%"]
    );
}

#[test]
fn null_semantics_follow_soql() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry = null"),
        ["Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry != null"),
        ["Acme", "beta corp", "Älter"]
    );
    // Unlike SQL, != and NOT IN keep the nulls.
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry != 'Energy'"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry NOT IN ('Banking')"),
        ["Acme", "Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry IN ('Banking', null)"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE AnnualRevenue < 100"),
        ["Älter"]
    );
    // A null checkbox is false.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE DoNotCall = false"),
        ["jones", "Adams", "Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE DoNotCall = true"),
        ["Smith"]
    );
    // A filter through an empty lookup sees null.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Account.Name = null"),
        ["Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Account.Name != 'Acme'"),
        ["Adams", "Orphan"]
    );
}

#[test]
fn numbers() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NumberOfEmployees > 5"),
        ["Acme", "beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NumberOfEmployees <= 3.5"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE AnnualRevenue = 150.50"),
        ["Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE AnnualRevenue > -1 AND AnnualRevenue <> 5000"),
        ["Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NumberOfEmployees IN (3, 10)"),
        ["Acme", "Älter"]
    );
}

#[test]
fn like_patterns() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE 'a%'"),
        ["Acme"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE '%CORP'"),
        ["beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE '_cme'"),
        ["Acme"]
    );
    assert_eq!(
        org.names(r"SELECT Name FROM Account WHERE Name LIKE '%\%'"),
        ["Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name LIKE 'äl%'"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry LIKE 'En%'"),
        ["Acme", "Älter"]
    );
    assert!(
        org.names("SELECT Name FROM Account WHERE Name LIKE 'cme'")
            .is_empty()
    );
}

#[test]
fn includes_and_excludes() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c INCLUDES ('golf')"),
        ["Smith", "Orphan"]
    );
    // `;` inside one value means all of these; separate values mean any.
    assert_eq!(
        org.names(
            "SELECT LastName FROM Contact WHERE Interests__c INCLUDES ('Golf;Tennis', 'Chess')"
        ),
        ["Smith", "Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c INCLUDES ('Tennis;Golf')"),
        ["Smith"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c EXCLUDES ('Golf')"),
        ["jones", "Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Interests__c = 'tennis;golf'"),
        ["Smith"]
    );
}

#[test]
fn boolean_logic() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry = 'Energy' AND (NumberOfEmployees < 5 OR Name = 'Gamma 100%')"),
        ["Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Name = 'Acme' OR Industry = 'Banking' OR Industry = null"),
        ["Acme", "beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NOT Industry = 'Energy'"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE NOT (Industry = 'Energy' OR Industry = null) AND Name != null"),
        ["beta corp"]
    );
}

#[test]
fn dates_datetimes_and_relative_literals() {
    let org = TestOrg::new();
    // now() is 2024-03-15T12:00:00Z.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate = TODAY"),
        ["Smith"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate = YESTERDAY"),
        ["jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate = LAST_N_DAYS:1"),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate < YESTERDAY"),
        ["Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate >= 2024-03-14"),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE Birthdate > TODAY"),
        Vec::<String>::new()
    );
    // Contacts were created on the 13th, 14th, 15th and 16th at 08:00.
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate = TODAY"),
        ["Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate > TODAY"),
        ["Orphan"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate < TODAY"),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact WHERE CreatedDate = LAST_N_DAYS:2"),
        ["Smith", "jones", "Adams"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE SystemModstamp > 2024-03-02T10:00:00Z"),
        ["Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE SystemModstamp >= 2024-03-02T11:00:00+01:00"),
        ["beta corp", "Gamma 100%", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE CreatedDate = 2024-03-01T09:00:00.000Z"),
        ["Acme"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE CreatedDate = THIS_MONTH"),
        ["Acme", "beta corp", "Gamma 100%", "Älter"]
    );
}

#[test]
fn order_by_with_nulls_and_several_keys() {
    let org = TestOrg::new();
    // Ascending puts nulls first, descending last.
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Industry"),
        ["Gamma 100%", "beta corp", "Acme", "Älter"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Industry DESC, Name DESC"),
        ["Älter", "Acme", "beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Industry ASC NULLS LAST, Name"),
        ["beta corp", "Acme", "Älter", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY NumberOfEmployees DESC NULLS FIRST"),
        ["Gamma 100%", "beta corp", "Acme", "Älter"]
    );
    // Text sorts without regard to case.
    assert_eq!(
        org.names("SELECT LastName FROM Contact ORDER BY LastName"),
        ["Adams", "jones", "Orphan", "Smith"]
    );
    // By a parent's field; the orphan's null parent sorts first.
    assert_eq!(
        org.names("SELECT LastName FROM Contact ORDER BY Account.Name, LastName DESC"),
        ["Orphan", "Smith", "jones", "Adams"]
    );
    assert_eq!(
        org.names("SELECT LastName FROM Contact ORDER BY DoNotCall DESC, LastName"),
        ["Smith", "Adams", "jones", "Orphan"]
    );
}

#[test]
fn pages_of_an_ordered_query_are_slices_of_the_whole() {
    let org = TestOrg::new();
    for order in [
        "Industry",
        "Industry DESC",
        "NumberOfEmployees NULLS LAST",
        "Owner.Name, Name DESC",
    ] {
        let whole = org.names(&format!("SELECT Name FROM Account ORDER BY {order}"));
        for offset in 0..=4 {
            for limit in 0..=4 {
                let page = org.names(&format!(
                    "SELECT Name FROM Account ORDER BY {order} LIMIT {limit} OFFSET {offset}"
                ));
                let end = (offset + limit).min(whole.len());
                let expected = whole.get(offset.min(end)..end).unwrap_or_default();
                assert_eq!(page, expected, "{order} LIMIT {limit} OFFSET {offset}");
            }
        }
    }
    // Ties keep Id order: Acme and Älter share an industry and come in Id order.
    assert_eq!(
        org.names("SELECT Name FROM Account WHERE Industry = 'Energy' ORDER BY Industry LIMIT 1"),
        ["Acme"]
    );
}

#[test]
fn limit_and_offset() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Name LIMIT 2"),
        ["Acme", "beta corp"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1"),
        ["beta corp", "Gamma 100%"]
    );
    assert_eq!(
        org.names("SELECT Name FROM Account ORDER BY Name OFFSET 3"),
        ["Älter"]
    );
    assert!(org.names("SELECT Name FROM Account LIMIT 0").is_empty());
    assert!(org.names("SELECT Name FROM Account OFFSET 2000").is_empty());
    let e = org.error("SELECT Name FROM Account OFFSET 2001");
    assert_eq!(e.error_code, ErrorCode::NumberOutsideValidRange);
    assert_eq!(e.message, "Maximum SOQL offset allowed is 2000");
}

#[test]
fn count() {
    let org = TestOrg::new();
    let count = |text: &str| {
        let (plan, records) = org.query(text).unwrap();
        assert!(plan.is_count(), "{text}");
        records.len()
    };
    assert_eq!(count("SELECT COUNT() FROM Account"), 4);
    assert_eq!(
        count("SELECT COUNT() FROM Account WHERE Industry = 'Energy'"),
        2
    );
    assert_eq!(count("SELECT COUNT() FROM Contact"), 4);
    assert_eq!(count("SELECT COUNT() FROM Account LIMIT 3"), 3);
    assert!(!org.query("SELECT Id FROM Account").unwrap().0.is_count());
    // count() agrees with select() without ordering anything.
    for text in [
        "SELECT COUNT() FROM Account",
        "SELECT COUNT() FROM Account WHERE Name LIKE '%a%'",
        "SELECT COUNT() FROM Account LIMIT 2 OFFSET 1",
        "SELECT COUNT() FROM Account OFFSET 9",
    ] {
        let (plan, records) = org.query(text).unwrap();
        let account = org.def("Account");
        assert_eq!(
            plan.count(&org, account, org.all(account)),
            records.len(),
            "{text}"
        );
    }
}

#[test]
fn recycle_bin_is_visible_to_query_all_only() {
    let org = TestOrg::new();
    assert!(
        !org.names("SELECT LastName FROM Contact")
            .contains(&"Deleted".to_string())
    );
    assert!(
        org.names("SELECT LastName FROM Contact WHERE IsDeleted = true")
            .is_empty()
    );
    let (_, all) = org
        .run(
            "SELECT LastName, IsDeleted FROM Contact WHERE IsDeleted = true",
            true,
        )
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["IsDeleted"], true);
}

#[test]
fn ids_in_either_length_and_case() {
    let org = TestOrg::new();
    let acme = id("001", 1);
    let short = &acme[..15];
    for literal in [acme.clone(), short.to_string(), acme.to_lowercase()] {
        assert_eq!(
            org.names(&format!("SELECT Name FROM Account WHERE Id = '{literal}'")),
            ["Acme"],
            "{literal}"
        );
    }
    assert_eq!(
        org.names(&format!(
            "SELECT LastName FROM Contact WHERE AccountId = '{short}'"
        )),
        ["Smith", "jones"]
    );
    assert_eq!(
        org.names(&format!(
            "SELECT Name FROM Account WHERE Id > '{acme}' ORDER BY Id LIMIT 2"
        )),
        ["beta corp", "Gamma 100%"]
    );
}

#[test]
fn id_scan_reports_top_level_id_bounds() {
    let org = TestOrg::new();
    let (a, b, c) = (id("001", 1), id("001", 2), id("001", 3));
    let scan = |text: &str| org.query(text).unwrap().0.id_scan().clone();
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id > '{a}' AND Name != null AND Id <= '{c}' ORDER BY Id LIMIT 200"
    ));
    assert_eq!(s.lower, Bound::Excluded(a.clone()));
    assert_eq!(s.upper, Bound::Included(c.clone()));
    assert_eq!(s.only, None);
    assert!(s.contains(&b) && !s.contains(&a));
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id >= '{a}' AND Id > '{b}'"
    ));
    assert_eq!(s.lower, Bound::Excluded(b.clone()));
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id IN ('{c}', '{a}', '{c}')"
    ));
    assert_eq!(s.only, Some(vec![a.clone(), c.clone()]));
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id IN ('{c}', '{a}') AND Id = '{a}'"
    ));
    assert_eq!(s.only, Some(vec![a.clone()]));
    // Only conjuncts on the object's own Id bound the scan.
    let s = scan(&format!(
        "SELECT Id FROM Account WHERE Id > '{a}' OR Name = 'x'"
    ));
    assert_eq!(s, IdScan::default());
    let s = scan(&format!("SELECT Id FROM Contact WHERE AccountId > '{a}'"));
    assert_eq!(s, IdScan::default());
}

#[test]
fn id_ordered_scans_stop_at_the_limit() {
    let org = TestOrg::new();
    let plan = |text: &str| {
        compile(
            text,
            &org,
            &QueryOptions {
                now: now(),
                include_deleted: false,
            },
        )
        .unwrap()
    };
    assert!(plan("SELECT Id FROM Account ORDER BY Id LIMIT 2").id_ordered());
    assert!(plan("SELECT Id FROM Account ORDER BY id ASC").id_ordered());
    assert!(plan("SELECT Id FROM Account").id_ordered());
    assert!(!plan("SELECT Id FROM Account ORDER BY Id DESC").id_ordered());
    assert!(!plan("SELECT Id FROM Account ORDER BY Name").id_ordered());
    assert!(!plan("SELECT Id FROM Account ORDER BY Id, Name").id_ordered());

    let p = plan("SELECT Id FROM Account ORDER BY Id LIMIT 2 OFFSET 1");
    let account = org.def("Account");
    let mut read = 0;
    let got = p.select(&org, account, org.all(account).inspect(|_| read += 1));
    assert_eq!(got.len(), 2);
    assert_eq!(
        read, 3,
        "the scan stops once OFFSET + LIMIT records matched"
    );
}

#[test]
fn alias_and_object_name_prefixes() {
    let org = TestOrg::new();
    assert_eq!(
        org.names("SELECT a.Name FROM Account a WHERE a.Industry = 'Banking'"),
        ["beta corp"]
    );
    assert_eq!(
        org.names("SELECT Account.Name FROM Account WHERE Account.Name = 'Acme'"),
        ["Acme"]
    );
    let (_, records) = org
        .query("SELECT c.Account.Name FROM Contact c WHERE c.LastName = 'Smith'")
        .unwrap();
    assert_eq!(records[0]["Account"]["Name"], "Acme");
}

#[test]
fn unknown_object_is_invalid_type() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id FROM Bogus");
    assert_eq!(e.error_code, ErrorCode::InvalidType);
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Bogus\n               ^\nERROR at Row:1:Column:16\nsObject type 'Bogus' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
    );
}

#[test]
fn unknown_fields_and_relationships_are_invalid_field() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id, Bogus FROM Account");
    assert_eq!(e.error_code, ErrorCode::InvalidField);
    assert_eq!(
        e.message,
        "\nSELECT Id, Bogus FROM Account\n           ^\nERROR at Row:1:Column:12\nNo such column 'Bogus' on entity 'Account'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    );
    let cases: &[(&str, &str, usize)] = &[
        (
            "SELECT Id FROM Account WHERE Missing__c = 'x'",
            "No such column 'Missing__c' on entity 'Account'.",
            30,
        ),
        (
            "SELECT Id FROM Account ORDER BY Missing__c",
            "No such column 'Missing__c' on entity 'Account'.",
            33,
        ),
        (
            "SELECT Account.Bogus FROM Contact",
            "No such column 'Bogus' on entity 'Account'.",
            8,
        ),
        (
            "SELECT Owner__r.Name FROM Account",
            "Didn't understand relationship 'Owner__r' in field path.",
            8,
        ),
        (
            "SELECT AccountId.Name FROM Contact",
            "Didn't understand relationship 'AccountId' in field path.",
            8,
        ),
        (
            "SELECT Account FROM Contact",
            "No such column 'Account' on entity 'Contact'.",
            8,
        ),
        (
            "SELECT Account__c.Name FROM Invoice__c",
            "Didn't understand relationship 'Account__c' in field path.",
            8,
        ),
    ];
    for (query, reason, column) in cases {
        let e = org.error(query);
        assert_eq!(e.error_code, ErrorCode::InvalidField, "{query}");
        assert!(e.reason().starts_with(reason), "{query}: {}", e.message);
        assert_eq!(e.position.map(|p| p.column), Some(*column), "{query}");
    }
}

#[test]
fn literals_of_the_wrong_type() {
    let org = TestOrg::new();
    let cases: &[(&str, ErrorCode, &str)] = &[
        (
            "SELECT Id FROM Account WHERE CreatedDate > '2024-01-01'",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Contact WHERE Birthdate = 2024-01-01T00:00:00Z",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'Birthdate' must be of type date and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE AnnualRevenue = '5'",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'AnnualRevenue' must be of type double and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE NumberOfEmployees = true",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'NumberOfEmployees' must be of type int and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Contact WHERE DoNotCall = 'true'",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'DoNotCall' must be of type boolean and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 5",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE Name = TODAY",
            ErrorCode::InvalidField,
            "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM Account WHERE Id = 'abc'",
            ErrorCode::InvalidQueryFilterOperator,
            "invalid ID field: abc",
        ),
        (
            "SELECT Id FROM Contact WHERE AccountId IN ('Edge Communications')",
            ErrorCode::InvalidQueryFilterOperator,
            "invalid ID field: Edge Communications",
        ),
        (
            "SELECT Id FROM Account WHERE Id LIKE '001%'",
            ErrorCode::InvalidQueryFilterOperator,
            "invalid operator on id field",
        ),
        (
            "SELECT Id FROM Account WHERE Name INCLUDES ('a')",
            ErrorCode::InvalidQueryFilterOperator,
            "includes/excludes operator only valid on multipicklist field",
        ),
        (
            "SELECT Id FROM Account WHERE SystemModstamp > 2020-12-12T12:12:00-25:00",
            ErrorCode::MalformedQuery,
            "Invalid datetime: 2020-12-12T12:12:00-25:00",
        ),
        (
            "SELECT Id FROM Contact WHERE Birthdate > 2023-02-29",
            ErrorCode::MalformedQuery,
            "Invalid date: 2023-02-29",
        ),
        (
            r"SELECT Id FROM Account WHERE Name = 'a\qb'",
            ErrorCode::MalformedQuery,
            r"Invalid string literal: illegal escape sequence '\q'",
        ),
        (
            "SELECT Id FROM Account WHERE Name LIKE null",
            ErrorCode::MalformedQuery,
            "unexpected token: 'null'",
        ),
    ];
    for (query, code, reason) in cases {
        let e = org.error(query);
        assert_eq!((e.error_code, e.reason()), (*code, *reason), "{query}");
    }
    // The caret points at the literal.
    let e = org.error("SELECT Id FROM Account WHERE Id = 'abc'");
    assert_eq!(e.position, Some(Position { row: 1, column: 35 }));
}

#[test]
fn fields_that_cannot_be_filtered_or_sorted() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id FROM Account WHERE Description = 'x'");
    assert_eq!(e.error_code, ErrorCode::InvalidField);
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Account WHERE Description = 'x'\n                             ^\nERROR at Row:1:Column:30\nfield 'Description' can not be filtered in a query call"
    );
    let e = org.error("SELECT Id FROM Account WHERE BillingAddress != null");
    assert_eq!(
        e.reason(),
        "field 'BillingAddress' can not be filtered in a query call"
    );
    let e = org.error("SELECT Id FROM Contact ORDER BY Interests__c");
    assert_eq!(
        e.reason(),
        "field 'Interests__c' can not be sorted in a query call"
    );
}

#[test]
fn duplicate_fields() {
    let org = TestOrg::new();
    let e = org.error("SELECT Id, Name, id FROM Account");
    assert_eq!(e.error_code, ErrorCode::InvalidField);
    assert_eq!(e.message, "duplicate field selected: id");
    let e = org.error("SELECT Account.Name, account.name FROM Contact");
    assert_eq!(e.message, "duplicate field selected: account.name");
    // The same name through different paths is no duplicate.
    assert!(org.query("SELECT Name, Owner.Name FROM Account").is_ok());
}

#[test]
fn queries_are_case_insensitive_in_names() {
    let org = TestOrg::new();
    let (plan, records) = org
        .query("SELECT ACCOUNT.NAME, lastname FROM contact WHERE lastname = 'SMITH'")
        .unwrap();
    assert_eq!(plan.object(), "Contact");
    assert_eq!(records[0]["Account"]["Name"], "Acme");
    assert_eq!(records[0]["LastName"], "Smith");
}
