//! The org's record semantics, each checked against the code and message Salesforce
//! sends: saving one record (`saves`), upserts (`upserts`), sObject Collections
//! (`collections`), and reading (`reading`), over the fixture here.

mod bulk;
mod collections;
mod platform;
mod reading;
mod saves;
mod upserts;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Map, Value as Json, json};

use super::*;
use crate::model::ObjectDef;

const V: &str = "62.0";

struct Fixture {
    org: Org,
    clock: ManualClock,
    admin: Id,
    other: Id,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap() + Duration::milliseconds(250)
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(start());
    let mut org = Org::with_clock(Arc::new(clock.clone())).unwrap();
    let admin = org
        .add_user(&NewUser::from_username("admin@example.com"))
        .unwrap();
    let other = org
        .add_user(&NewUser::from_username("integration@example.com"))
        .unwrap();
    Fixture {
        org,
        clock,
        admin,
        other,
    }
}

fn body(json: Json) -> Map<String, Json> {
    match json {
        Json::Object(map) => map,
        _ => panic!("not an object"),
    }
}

impl Fixture {
    fn create(&mut self, object: &str, json: Json) -> Result<Id, ApiError> {
        let admin = self.admin;
        self.org.create(object, &body(json), &admin)
    }

    fn account(&mut self, name: &str) -> Id {
        self.create("Account", json!({"Name": name})).unwrap()
    }

    fn get(&self, object: &str, id: &Id) -> Json {
        self.org.retrieve(object, id.as_str(), None, V).unwrap()
    }

    fn ids(&self, soql: &str, all: bool) -> Vec<String> {
        let cursor = self.org.query(soql, all).unwrap();
        self.org
            .page(&cursor, 0, cursor.len(), V)
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn assert_save_error(result: Result<Id, ApiError>, code: &str, message: &str, fields: &[&str]) {
    let e = result.unwrap_err();
    assert_eq!(e.status, 400, "{e:?}");
    assert_eq!(e.error_code, code, "{e:?}");
    assert_eq!(e.message, message, "{e:?}");
    assert_eq!(
        e.fields,
        Some(fields.iter().map(|f| (*f).to_owned()).collect()),
        "{e:?}"
    );
}

/// A record of `object` as sObject Collections take it: its fields and `attributes`.
fn record(object: &str, fields: Json) -> Json {
    let mut map = body(fields);
    map.insert("attributes".into(), json!({"type": object}));
    Json::Object(map)
}
