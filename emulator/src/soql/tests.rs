//! The engine end to end over a small in-test org (here): filters, nulls, `LIKE`,
//! `INCLUDES` and dates (`filters`), ordering, `COUNT()`, paging bounds and the
//! store-facing Id scan (`paging`), rendering and relationship fields (`rendering`), and
//! names and the errors of binding (`binding`).

mod binding;
mod filters;
mod paging;
mod rendering;

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
        org.insert_users_and_accounts();
        org.insert_contacts();
        org.insert_invoices();
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

    /// Two users, and four accounts owned by them, one a day from March 1st.
    fn insert_users_and_accounts(&mut self) {
        let (ann, bob) = (id("005", 1), id("005", 2));
        self.insert(
            "User",
            &[
                ("Id", Value::text(ann.as_str())),
                ("Name", Value::text("Ann Admin")),
            ],
        );
        self.insert(
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
            self.insert(
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
    }

    /// Four contacts, one without an account.
    fn insert_contacts(&mut self) {
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
            self.insert(
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
    }

    /// Three invoices, one without an account.
    fn insert_invoices(&mut self) {
        for (n, (account, amount)) in [(Some(1), 100.0), (Some(2), 250.0), (None, 5.0)]
            .into_iter()
            .enumerate()
        {
            self.insert(
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
