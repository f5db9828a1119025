//! The org's record semantics, each checked against the code and message Salesforce
//! sends.

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

#[test]
fn create_assigns_id_audit_fields_owner_and_defaults() {
    let mut f = fixture();
    let id = f
        .create(
            "Account",
            json!({"Name": "Acme", "BillingCity": "Paris", "BillingPostalCode": "75001",
                   "Phone": ""}),
        )
        .unwrap();
    assert_eq!(id.key_prefix(), "001");
    assert_eq!(id.as_str().len(), 18);
    let record = f.get("Account", &id);
    assert_eq!(
        record["attributes"],
        json!({"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")})
    );
    assert_eq!(record["Id"], json!(id.as_str()));
    assert_eq!(record["IsDeleted"], json!(false));
    assert_eq!(record["CreatedDate"], json!("2024-03-01T12:00:00.000+0000"));
    assert_eq!(record["SystemModstamp"], record["CreatedDate"]);
    assert_eq!(record["LastModifiedDate"], record["CreatedDate"]);
    assert_eq!(record["CreatedById"], json!(f.admin.as_str()));
    assert_eq!(record["OwnerId"], json!(f.admin.as_str()));
    assert_eq!(record["Phone"], Json::Null, "'' is stored as null");
    assert_eq!(record["BillingAddress"]["city"], json!("Paris"));
    assert_eq!(record["BillingAddress"]["postalCode"], json!("75001"));
    assert_eq!(record["BillingAddress"]["street"], Json::Null);
    assert_eq!(record["ShippingAddress"], Json::Null);
    let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "attributes");
    assert_eq!(keys[1], "Id");
}

#[test]
fn required_fields_are_enforced() {
    let mut f = fixture();
    assert_save_error(
        f.create("Contact", json!({"FirstName": "Ada"})),
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [LastName]",
        &["LastName"],
    );
    assert_save_error(
        f.create("Lead", json!({"FirstName": "Ada"})),
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [LastName, Company]",
        &["LastName", "Company"],
    );
    let id = f.account("Acme");
    let admin = f.admin;
    let e = f
        .org
        .update("Account", id.as_str(), &body(json!({"Name": null})), &admin)
        .unwrap_err();
    assert_eq!(e.error_code, "REQUIRED_FIELD_MISSING");
    assert_eq!(e.message, "Required fields are missing: [Name]");
}

#[test]
fn strings_longer_than_the_field_are_refused() {
    let mut f = fixture();
    let city = "Giugliano in Campania, Metropolitan City of Naples";
    assert_save_error(
        f.create("Account", json!({"Name": "Acme", "BillingCity": city})),
        "STRING_TOO_LONG",
        &format!("Billing City: data value too large: {city} (max length=40)"),
        &["BillingCity"],
    );
}

#[test]
fn restricted_picklists_refuse_unknown_values() {
    let mut f = fixture();
    assert_save_error(
        f.create("Invoice__c", json!({"Status__c": "Lost"})),
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "Status: bad value for restricted picklist field: Lost",
        &["Status__c"],
    );
    // Unrestricted picklists take any value, as in Salesforce.
    assert!(
        f.create("Account", json!({"Name": "A", "Industry": "Space"}))
            .is_ok()
    );
}

#[test]
fn unique_external_ids_are_enforced() {
    let mut f = fixture();
    let first = f
        .create("Invoice__c", json!({"External_Id__c": "INV-A"}))
        .unwrap();
    assert_save_error(
        f.create("Invoice__c", json!({"External_Id__c": "inv-a"})),
        "DUPLICATE_VALUE",
        &format!(
            "duplicate value found: External_Id__c duplicates value on record with id: {first}"
        ),
        &["External_Id__c"],
    );
}

#[test]
fn read_only_fields_cannot_be_written() {
    let mut f = fixture();
    assert_save_error(
        f.create("Invoice__c", json!({"Total__c": 5, "Name": "INV-9"})),
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "Unable to create/update fields: Total__c, Name. Please check the security settings \
         of this field and verify that it is read/write for your profile or permission set.",
        &["Total__c", "Name"],
    );
    assert_save_error(
        f.create(
            "Account",
            json!({"Name": "A", "CreatedDate": "2020-01-01T00:00:00Z"}),
        ),
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "Unable to create/update fields: CreatedDate. Please check the security settings of \
         this field and verify that it is read/write for your profile or permission set.",
        &["CreatedDate"],
    );
    assert_save_error(
        f.create(
            "Account",
            json!({"Name": "A", "BillingAddress": {"city": "Paris"}}),
        ),
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "Unable to create/update fields: BillingAddress. Please check the security settings \
         of this field and verify that it is read/write for your profile or permission set.",
        &["BillingAddress"],
    );
}

#[test]
fn lookups_must_point_to_live_records_of_the_right_object() {
    let mut f = fixture();
    let account = f.account("Acme");
    let contact = f
        .create("Contact", json!({"LastName": "Lovelace"}))
        .unwrap();
    assert_save_error(
        f.create("Contact", json!({"LastName": "X", "AccountId": "nonsense"})),
        "MALFORMED_ID",
        "Account ID: id value of incorrect type: nonsense",
        &["AccountId"],
    );
    assert_save_error(
        f.create(
            "Contact",
            json!({"LastName": "X", "AccountId": contact.as_str()}),
        ),
        "FIELD_INTEGRITY_EXCEPTION",
        &format!("Account ID: id value of incorrect type: {contact}"),
        &["AccountId"],
    );
    let mut ids = crate::ids::IdGenerator::new("001", "8d0").unwrap();
    let never = (0..1000).map(|_| ids.next_id()).last().unwrap();
    assert_save_error(
        f.create(
            "Contact",
            json!({"LastName": "X", "AccountId": never.as_str()}),
        ),
        "INVALID_CROSS_REFERENCE_KEY",
        "invalid cross reference id",
        &["AccountId"],
    );
    let ok = f
        .create(
            "Contact",
            json!({"LastName": "X", "AccountId": account.short()}),
        )
        .unwrap();
    assert_eq!(f.get("Contact", &ok)["AccountId"], json!(account.as_str()));
}

#[test]
fn validation_rules_come_from_the_definition() {
    let mut f = fixture();
    assert_save_error(
        f.create("Invoice__c", json!({"Amount__c": -10})),
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Amount cannot be negative unless the invoice is void.",
        &["Amount__c"],
    );
    assert!(
        f.create("Invoice__c", json!({"Amount__c": -10, "Status__c": "Void"}))
            .is_ok()
    );
}

#[test]
fn bad_bodies_fail_the_request() {
    let mut f = fixture();
    let e = f
        .create("Account", json!({"Name": "A", "Bogus": 1}))
        .unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (400, "INVALID_FIELD"));
    let e = f
        .create("Account", json!({"Name": "A", "NumberOfEmployees": true}))
        .unwrap_err();
    assert_eq!(e.error_code, "JSON_PARSER_ERROR");
    let e = f
        .create("Contact", json!({"LastName": "A", "DoNotCall": "maybe"}))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Cannot deserialize instance of boolean from VALUE_STRING value maybe or request may be \
         missing a required field"
    );
    let e = f.create("Nope__c", json!({})).unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (404, "NOT_FOUND"));
    let e = f
        .create("Account", json!({"Id": "001000000000001", "Name": "A"}))
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_FIELD");
}

#[test]
fn numbers_round_to_scale_and_respect_precision() {
    let mut f = fixture();
    let id = f
        .create("Invoice__c", json!({"Amount__c": "100.456", "Tax__c": 7.5}))
        .unwrap();
    let record = f.get("Invoice__c", &id);
    assert_eq!(record["Amount__c"], json!(100.46));
    assert_eq!(record["Total__c"], json!(107.99));
    assert_save_error(
        f.create("Invoice__c", json!({"Amount__c": 1e15})),
        "NUMBER_OUTSIDE_VALID_RANGE",
        "Amount: value outside of valid range on numeric field: 1000000000000000",
        &["Amount__c"],
    );
}

#[test]
fn defaults_and_auto_numbers() {
    let mut f = fixture();
    let a = f.create("Invoice__c", json!({})).unwrap();
    let b = f
        .create("Invoice__c", json!({"Status__c": "Sent"}))
        .unwrap();
    let a = f.get("Invoice__c", &a);
    let b = f.get("Invoice__c", &b);
    assert_eq!(a["Name"], json!("INV-0001"));
    assert_eq!(b["Name"], json!("INV-0002"));
    assert_eq!(a["Status__c"], json!("Draft"));
    assert_eq!(b["Status__c"], json!("Sent"));
    let lead = f
        .create("Lead", json!({"LastName": "Doe", "Company": "Initech"}))
        .unwrap();
    let lead = f.get("Lead", &lead);
    assert_eq!(lead["Status"], json!("Open - Not Contacted"));
    assert_eq!(lead["HasOptedOutOfEmail"], json!(false));
    assert_eq!(lead["Name"], json!("Doe"));
}

#[test]
fn cross_object_formula_follows_the_parent_without_touching_the_child() {
    let mut f = fixture();
    let account = f.account("Acme");
    let invoice = f
        .create(
            "Invoice__c",
            json!({"Account__c": account.as_str(), "Amount__c": 200, "Tax__c": 10}),
        )
        .unwrap();
    let before = f.get("Invoice__c", &invoice);
    assert_eq!(before["Account_Name__c"], json!("Acme"));
    assert_eq!(before["Total__c"], json!(220.0));
    f.clock.advance(Duration::minutes(5));
    let admin = f.admin;
    f.org
        .update(
            "Account",
            account.as_str(),
            &body(json!({"Name": "Acme Corp"})),
            &admin,
        )
        .unwrap();
    let after = f.get("Invoice__c", &invoice);
    assert_eq!(after["Account_Name__c"], json!("Acme Corp"));
    assert_eq!(after["SystemModstamp"], before["SystemModstamp"]);
    let cursor = f
        .org
        .query(
            "SELECT Account_Name__c, Account__r.Name FROM Invoice__c",
            false,
        )
        .unwrap();
    let rows = f.org.page(&cursor, 0, 10, V);
    assert_eq!(rows[0]["Account_Name__c"], json!("Acme Corp"));
    assert_eq!(rows[0]["Account__r"]["Name"], json!("Acme Corp"));
}

#[test]
fn updates_move_the_modification_stamps() {
    let mut f = fixture();
    let id = f.account("Acme");
    f.clock.advance(Duration::seconds(90));
    let other = f.other;
    f.org
        .update(
            "Account",
            id.short(),
            &body(json!({"Rating": "Hot"})),
            &other,
        )
        .unwrap();
    let record = f.get("Account", &id);
    assert_eq!(record["CreatedDate"], json!("2024-03-01T12:00:00.000+0000"));
    assert_eq!(
        record["LastModifiedDate"],
        json!("2024-03-01T12:01:30.000+0000")
    );
    assert_eq!(record["SystemModstamp"], record["LastModifiedDate"]);
    assert_eq!(record["LastModifiedById"], json!(other.as_str()));
    assert_eq!(record["CreatedById"], json!(f.admin.as_str()));
    assert_eq!(record["Rating"], json!("Hot"));
    let e = f
        .org
        .update(
            "Account",
            id.as_str(),
            &body(json!({"Id": "001000000000009"})),
            &other,
        )
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_FIELD");
}

#[test]
fn record_urls_name_records_of_their_object() {
    let mut f = fixture();
    let id = f.account("Acme");
    let e = f.org.retrieve("Account", "xyz", None, V).unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (404, "NOT_FOUND"));
    assert_eq!(
        e.message,
        "Provided external ID field does not exist or is not accessible: xyz"
    );
    let contact = f.create("Contact", json!({"LastName": "L"})).unwrap();
    let e = f
        .org
        .retrieve("Account", contact.as_str(), None, V)
        .unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (400, "MALFORMED_ID"));
    let lower = id.as_str().to_lowercase();
    assert_eq!(
        f.org.retrieve("account", &lower, None, V).unwrap()["Id"],
        json!(id.as_str())
    );
    let e = f
        .org
        .retrieve("Account", id.as_str(), Some("Name,Nope"), V)
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_FIELD");
    let some = f
        .org
        .retrieve("Account", id.as_str(), Some("name, Rating"), V)
        .unwrap();
    let keys: Vec<&String> = some.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["attributes", "Name", "Rating"]);
}

#[test]
fn recycle_bin_hides_deleted_records_until_undeleted() {
    let mut f = fixture();
    let keep = f.account("Keep");
    let gone = f.account("Gone");
    f.clock.advance(Duration::minutes(3));
    let admin = f.admin;
    f.org.delete("Account", gone.as_str(), &admin).unwrap();
    let e = f
        .org
        .retrieve("Account", gone.as_str(), None, V)
        .unwrap_err();
    assert_eq!(
        (e.status, e.error_code.as_str(), e.message.as_str()),
        (404, "ENTITY_IS_DELETED", "entity is deleted")
    );
    let e = f.org.delete("Account", gone.as_str(), &admin).unwrap_err();
    assert_eq!(e.error_code, "ENTITY_IS_DELETED");
    let e = f
        .org
        .update(
            "Account",
            gone.as_str(),
            &body(json!({"Name": "X"})),
            &admin,
        )
        .unwrap_err();
    assert_eq!(e.error_code, "ENTITY_IS_DELETED");
    assert_eq!(f.ids("SELECT Id FROM Account", false), [keep.as_str()]);
    assert_eq!(
        f.ids("SELECT Id, IsDeleted FROM Account", true),
        [keep.as_str(), gone.as_str()]
    );
    let window = f
        .org
        .deleted("Account", start(), start() + Duration::hours(1))
        .unwrap();
    assert_eq!(
        window["deletedRecords"],
        json!([{"id": gone.as_str(), "deletedDate": "2024-03-01T12:03:00.000+0000"}])
    );
    f.org.undelete(gone.as_str(), &admin).unwrap();
    assert_eq!(f.get("Account", &gone)["IsDeleted"], json!(false));
    assert_eq!(f.ids("SELECT Id FROM Account", false).len(), 2);
    let e = f.org.undelete(gone.as_str(), &admin).unwrap_err();
    assert_eq!(e.error_code, "UNDELETE_FAILED");
    let window = f
        .org
        .deleted("Account", start(), start() + Duration::hours(1))
        .unwrap();
    assert_eq!(window["deletedRecords"], json!([]));
}

#[test]
fn users_cannot_be_deleted() {
    let mut f = fixture();
    let (admin, other) = (f.admin, f.other);
    let e = f.org.delete("User", other.as_str(), &admin).unwrap_err();
    assert_eq!(e.error_code, "INSUFFICIENT_ACCESS_OR_READONLY");
    assert_eq!(f.org.user_id_by_username("ADMIN@example.com"), Some(admin));
    let first = f.get("User", &admin);
    assert_eq!(first["CreatedById"], json!(admin.as_str()));
    assert_eq!(first["Name"], json!("Admin User"));
    assert_eq!(f.get("User", &other)["CreatedById"], json!(admin.as_str()));
}

#[test]
fn upsert_creates_updates_or_lists_the_matches() {
    let mut f = fixture();
    let admin = f.admin;
    let created = f
        .org
        .upsert(
            "Invoice__c",
            "External_Id__c",
            "X-1",
            &body(json!({"Amount__c": 5})),
            &admin,
            V,
            false,
        )
        .unwrap();
    let UpsertOutcome::Created(id) = created else {
        panic!("{created:?}")
    };
    assert_eq!(f.get("Invoice__c", &id)["External_Id__c"], json!("X-1"));
    let updated = f
        .org
        .upsert(
            "invoice__c",
            "external_id__c",
            "X-1",
            &body(json!({"Amount__c": 6})),
            &admin,
            V,
            false,
        )
        .unwrap();
    assert_eq!(updated, UpsertOutcome::Updated(id));
    assert_eq!(f.get("Invoice__c", &id)["Amount__c"], json!(6.0));

    let p1 = f
        .create("Product2", json!({"Name": "A", "ExternalId": "SKU"}))
        .unwrap();
    let p2 = f
        .create("Product2", json!({"Name": "B", "ExternalId": "SKU"}))
        .unwrap();
    let multiple = f
        .org
        .upsert(
            "Product2",
            "ExternalId",
            "SKU",
            &body(json!({"Name": "C"})),
            &admin,
            "v60.0",
            false,
        )
        .unwrap();
    assert_eq!(
        multiple,
        UpsertOutcome::Multiple(vec![
            format!("/services/data/v60.0/sobjects/Product2/{p1}"),
            format!("/services/data/v60.0/sobjects/Product2/{p2}"),
        ])
    );
    let e = f
        .org
        .upsert(
            "Invoice__c",
            "Amount__c",
            "1",
            &body(json!({})),
            &admin,
            V,
            false,
        )
        .unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (404, "NOT_FOUND"));
    let e = f
        .org
        .upsert(
            "Invoice__c",
            "External_Id__c",
            "X-2",
            &body(json!({})),
            &admin,
            V,
            true,
        )
        .unwrap_err();
    assert_eq!(e.status, 404);
}

fn record(object: &str, fields: Json) -> Json {
    let mut map = body(fields);
    map.insert("attributes".into(), json!({"type": object}));
    Json::Object(map)
}

#[test]
fn all_or_none_rolls_back_every_record() {
    let mut f = fixture();
    let admin = f.admin;
    let results = f
        .org
        .collection_create(
            &[
                record("Account", json!({"Name": "One"})),
                record("Contact", json!({"FirstName": "No last name"})),
                record("Account", json!({"Name": "Three"})),
            ],
            true,
            &admin,
        )
        .unwrap();
    let json = serde_json::to_value(&results).unwrap();
    let rolled_back = json!({
        "success": false,
        "errors": [{
            "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "message": "Record rolled back because not all records were valid and the request \
                        was using AllOrNone header",
            "fields": [],
        }],
    });
    assert_eq!(json[0], rolled_back);
    assert_eq!(
        json[1],
        json!({"success": false, "errors": [{
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [LastName]",
            "fields": ["LastName"],
        }]})
    );
    assert_eq!(json[2], rolled_back);
    assert_eq!(f.org.record_count("Account"), 0);
    assert!(f.ids("SELECT Id FROM Account", true).is_empty());
}

#[test]
fn all_or_none_undoes_updates_and_deletes() {
    let mut f = fixture();
    let admin = f.admin;
    let a = f.account("A");
    let b = f.account("B");
    let before = f.get("Account", &a);
    f.clock.advance(Duration::minutes(1));
    let results = f
        .org
        .collection_update(
            &[
                record("Account", json!({"id": a.as_str(), "Name": "A2"})),
                record("Account", json!({"id": b.as_str(), "Name": null})),
            ],
            true,
            &admin,
        )
        .unwrap();
    assert_eq!(results[0].id.as_deref(), Some(a.as_str()));
    assert_eq!(
        results[0].errors[0].status_code,
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
    assert_eq!(f.get("Account", &a), before);
    let results = f
        .org
        .collection_delete(&[a.as_str(), "001bogus"], true, &admin)
        .unwrap();
    assert!(!results[0].success && !results[1].success);
    assert_eq!(results[1].errors[0].status_code, "MALFORMED_ID");
    assert_eq!(f.get("Account", &a)["IsDeleted"], json!(false));
    let window = f
        .org
        .deleted("Account", start(), start() + Duration::hours(1))
        .unwrap();
    assert_eq!(window["deletedRecords"], json!([]));
}

#[test]
fn without_all_or_none_each_record_stands_alone() {
    let mut f = fixture();
    let admin = f.admin;
    let results = f
        .org
        .collection_create(
            &[
                record("Account", json!({"Name": "One"})),
                record("Invoice__c", json!({"Status__c": "Lost"})),
            ],
            false,
            &admin,
        )
        .unwrap();
    let json = serde_json::to_value(&results).unwrap();
    assert_eq!(json[0]["success"], json!(true));
    assert_eq!(json[0]["errors"], json!([]));
    assert_eq!(json[0]["id"].as_str().unwrap().len(), 18);
    assert_eq!(json[1]["success"], json!(false));
    assert!(json[1].get("id").is_none());
    assert_eq!(f.org.record_count("Account"), 1);
    let results = f
        .org
        .collection_delete(
            &[json[0]["id"].as_str().unwrap(), "001bogus"],
            false,
            &admin,
        )
        .unwrap();
    assert!(results[0].success && !results[1].success);
}

#[test]
fn collections_refuse_malformed_requests_whole() {
    let mut f = fixture();
    let admin = f.admin;
    let many: Vec<Json> = (0..201)
        .map(|i| record("Account", json!({"Name": i})))
        .collect();
    let e = f.org.collection_create(&many, false, &admin).unwrap_err();
    assert_eq!(
        (e.status, e.error_code.as_str(), e.message.as_str()),
        (
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call"
        )
    );
    let e = f
        .org
        .collection_create(&[json!({"Name": "untyped"})], false, &admin)
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_TYPE");
    let e = f
        .org
        .collection_create(&[record("Account", json!({"Nme": "typo"}))], false, &admin)
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_FIELD");
    assert_eq!(f.org.record_count("Account"), 0);
    let ok: Vec<Json> = (0..200)
        .map(|i| record("Account", json!({"Name": i})))
        .collect();
    assert_eq!(
        f.org.collection_create(&ok, true, &admin).unwrap().len(),
        200
    );
}

#[test]
fn collection_upsert_reports_created() {
    let mut f = fixture();
    let admin = f.admin;
    f.create("Invoice__c", json!({"External_Id__c": "E-1"}))
        .unwrap();
    let results = f
        .org
        .collection_upsert(
            "Invoice__c",
            "External_Id__c",
            &[
                record(
                    "Invoice__c",
                    json!({"External_Id__c": "E-1", "Amount__c": 1}),
                ),
                record(
                    "Invoice__c",
                    json!({"External_Id__c": "E-2", "Amount__c": 2}),
                ),
            ],
            false,
            &admin,
        )
        .unwrap();
    assert_eq!(results[0].created, Some(false));
    assert_eq!(results[1].created, Some(true));
    let json = serde_json::to_value(&results[1]).unwrap();
    assert_eq!(json["created"], json!(true));
    assert_eq!(f.org.record_count("Invoice__c"), 2);
}

#[test]
fn collection_retrieve_answers_null_for_missing_ids() {
    let mut f = fixture();
    let a = f.account("A");
    let rows = f
        .org
        .collection_retrieve(
            "Account",
            &[a.as_str(), "001000000000000AAA", "x"],
            "Name",
            V,
        )
        .unwrap();
    assert_eq!(rows[0]["Name"], json!("A"));
    assert_eq!(rows[1], Json::Null);
    assert_eq!(rows[2], Json::Null);
}

#[test]
fn replication_windows() {
    let mut f = fixture();
    let a = f.account("A");
    f.clock.advance(Duration::minutes(10));
    let b = f.account("B");
    let t0 = start();
    let updated = f
        .org
        .updated("Account", t0, t0 + Duration::minutes(5))
        .unwrap();
    assert_eq!(updated["ids"], json!([a.as_str()]));
    assert_eq!(
        updated["latestDateCovered"],
        json!("2024-03-01T12:05:00.000+0000")
    );
    let updated = f
        .org
        .updated(
            "Account",
            t0 + Duration::seconds(30),
            t0 + Duration::hours(2),
        )
        .unwrap();
    assert_eq!(
        updated["ids"],
        json!([a.as_str(), b.as_str()]),
        "seconds are ignored"
    );
    assert_eq!(
        updated["latestDateCovered"],
        json!("2024-03-01T12:10:00.000+0000")
    );
    let e = f
        .org
        .updated("Account", t0, t0 + Duration::seconds(40))
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
    let e = f
        .org
        .updated("Account", t0 - Duration::days(31), t0)
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
    assert!(
        f.org
            .deleted("Account", t0 - Duration::days(14), t0)
            .is_ok()
    );
    let e = f
        .org
        .deleted("Account", t0 - Duration::days(16), t0)
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_REPLICATION_DATE");
    let deleted = f
        .org
        .deleted("Account", t0, t0 + Duration::hours(1))
        .unwrap();
    assert_eq!(
        deleted["earliestDateAvailable"],
        json!("2024-03-01T12:00:00.000+0000")
    );
    let e = f
        .org
        .updated("Nope", t0, t0 + Duration::hours(1))
        .unwrap_err();
    assert_eq!(e.status, 404);
    let mut def = ObjectDef::from_json(
        r#"{"name": "Log__c", "label": "Log", "labelPlural": "Logs", "keyPrefix": "a0L",
            "replicateable": false, "fields": []}"#,
    )
    .unwrap();
    def.custom = true;
    f.org.define_object(def).unwrap();
    let e = f
        .org
        .updated("Log__c", t0, t0 + Duration::hours(1))
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_TYPE");
}

#[test]
fn tests_can_define_their_own_objects() {
    let mut f = fixture();
    let def = ObjectDef::from_json(
        r#"{"name": "Ticket__c", "label": "Ticket", "labelPlural": "Tickets", "keyPrefix": "a0T",
            "custom": true,
            "fields": [
              {"name": "Name", "label": "Ticket Name", "type": "string", "length": 80,
               "nameField": true, "nillable": false},
              {"name": "Invoice__c", "label": "Invoice", "type": "reference", "custom": true,
               "referenceTo": ["Invoice__c"], "relationshipName": "Invoice__r"},
              {"name": "Invoice_Total__c", "label": "Invoice Total", "type": "currency",
               "precision": 18, "scale": 2, "custom": true, "calculated": true,
               "calculatedFormula": "Invoice__r.Total__c"}
            ]}"#,
    )
    .unwrap();
    f.org.define_object(def.clone()).unwrap();
    assert!(f.org.define_object(def).is_err(), "names are unique");
    let invoice = f
        .create("Invoice__c", json!({"Amount__c": 10, "Tax__c": 20}))
        .unwrap();
    let ticket = f
        .create(
            "Ticket__c",
            json!({"Name": "T", "Invoice__c": invoice.as_str()}),
        )
        .unwrap();
    assert_eq!(ticket.key_prefix(), "a0T");
    assert_eq!(f.get("Ticket__c", &ticket)["Invoice_Total__c"], json!(12.0));
    let describe = f.org.describe("Invoice__c", V).unwrap();
    let children = describe["childRelationships"].as_array().unwrap();
    assert!(
        children
            .iter()
            .any(|c| c["childSObject"] == "Ticket__c" && c["relationshipName"] == "Tickets__r")
    );
}

#[test]
fn describe_reports_definitions() {
    let f = fixture();
    let global = f.org.describe_global(V);
    assert_eq!(global["encoding"], "UTF-8");
    assert_eq!(global["maxBatchSize"], 200);
    let account = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Account")
        .unwrap();
    assert_eq!(account["keyPrefix"], "001");
    assert_eq!(
        account["urls"]["sobject"],
        "/services/data/v62.0/sobjects/Account"
    );
    let describe = f.org.describe("invoice__c", "v62.0").unwrap();
    assert_eq!(describe["name"], "Invoice__c");
    let fields = describe["fields"].as_array().unwrap();
    let field = |name: &str| fields.iter().find(|x| x["name"] == name).unwrap();
    assert_eq!(field("Total__c")["calculated"], true);
    assert_eq!(
        field("Total__c")["calculatedFormula"],
        "Amount__c * (1 + Tax__c / 100)"
    );
    assert_eq!(field("Total__c")["createable"], false);
    assert_eq!(field("Total__c")["type"], "currency");
    assert_eq!(field("Total__c")["soapType"], "xsd:double");
    assert_eq!(field("Status__c")["restrictedPicklist"], true);
    assert_eq!(
        field("Status__c")["picklistValues"][0],
        json!({"active": true, "defaultValue": true, "label": "Draft", "validFor": null, "value": "Draft"})
    );
    assert_eq!(field("External_Id__c")["externalId"], true);
    assert_eq!(field("Account__c")["relationshipName"], "Account__r");
    assert_eq!(field("Id")["type"], "id");
    let account = f.org.describe("Account", V).unwrap();
    let fields = account["fields"].as_array().unwrap();
    let city = fields.iter().find(|x| x["name"] == "BillingCity").unwrap();
    assert_eq!(city["compoundFieldName"], "BillingAddress");
    assert_eq!(city["length"], 40);
    assert_eq!(city["byteLength"], 120);
    let children = account["childRelationships"].as_array().unwrap();
    assert!(children.iter().any(|c| c["childSObject"] == "Contact"
        && c["field"] == "AccountId"
        && c["relationshipName"] == "Contacts"));
    assert!(f.org.describe("Nope", V).is_err());
    assert_eq!(
        f.org.describe_last_modified("Account"),
        Some(Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap())
    );
    let info = f.org.basic_info("User", V).unwrap();
    assert_eq!(info["objectDescribe"]["name"], "User");
    assert_eq!(info["recentItems"].as_array().unwrap().len(), 2);
}

#[test]
fn id_range_queries_page_in_creation_order() {
    let mut f = fixture();
    let admin = f.admin;
    let records: Vec<Json> = (0..150)
        .map(|i| record("Account", json!({"Name": format!("A{i:03}")})))
        .collect();
    let results = f.org.collection_create(&records, true, &admin).unwrap();
    let ids: Vec<String> = results.iter().map(|r| r.id.clone().unwrap()).collect();
    let page = f.ids(
        &format!(
            "SELECT Id FROM Account WHERE Id > '{}' ORDER BY Id LIMIT 20",
            ids[99]
        ),
        false,
    );
    assert_eq!(page, ids[100..120]);
    let short = &ids[10][..15];
    let page = f.ids(
        &format!(
            "SELECT Id FROM Account WHERE Id >= '{short}' AND Id < '{}'",
            ids[13]
        ),
        false,
    );
    assert_eq!(page, ids[10..13]);
    let page = f.ids(
        &format!(
            "SELECT Id FROM Account WHERE Id IN ('{}', '{}')",
            ids[5], ids[2]
        ),
        false,
    );
    assert_eq!(page, [ids[2].clone(), ids[5].clone()]);
    let cursor = f.org.query("SELECT COUNT() FROM Account", false).unwrap();
    assert!(cursor.is_count());
    assert_eq!(cursor.total_size(), 150);
    assert!(cursor.is_empty());
    let cursor = f
        .org
        .query("SELECT Name FROM Account ORDER BY Name DESC", false)
        .unwrap();
    assert_eq!(cursor.total_size(), 150);
    let page = f.org.page(&cursor, 140, 50, V);
    assert_eq!(page.len(), 10);
    assert_eq!(page[9]["Name"], "A000");
    let e = f.org.query("SELECT Nope FROM Account", false).unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (400, "INVALID_FIELD"));
}

#[test]
fn lookups_by_external_id_resolve_to_the_parent() {
    let mut f = fixture();
    f.create("Invoice__c", json!({"External_Id__c": "P-1"}))
        .unwrap();
    let account = f
        .create("Account", json!({"Name": "A", "AccountNumber": "N-1"}))
        .unwrap();
    let id = f
        .create(
            "Invoice__c",
            json!({"External_Id__c": "C-1", "Account__r": {"Id": account.as_str()}}),
        )
        .unwrap();
    assert_eq!(
        f.get("Invoice__c", &id)["Account__c"],
        json!(account.as_str())
    );
    let e = f
        .create("Invoice__c", json!({"Account__r": {"Name": "A"}}))
        .unwrap_err();
    assert_eq!(e.error_code, "INVALID_FIELD");
}

#[test]
fn pages_written_in_place_match_the_rendered_records() {
    let mut f = fixture();
    let account = f
        .create(
            "Account",
            json!({"Name": "Acme", "BillingCity": "Paris", "AnnualRevenue": 1500.5,
                   "NumberOfEmployees": 12}),
        )
        .unwrap();
    f.create(
        "Contact",
        json!({"LastName": "Curie", "AccountId": account.as_str()}),
    )
    .unwrap();
    f.create("Contact", json!({"LastName": "Orphan"})).unwrap();
    let cursor = f
        .org
        .query(
            "SELECT Id, LastName, Account.Name, Account.BillingAddress, Account.AnnualRevenue, \
             Account.NumberOfEmployees, CreatedDate, Birthdate FROM Contact ORDER BY LastName",
            false,
        )
        .unwrap();
    let built = f.org.page(&cursor, 0, 10, V);
    let written: Json = serde_json::from_slice(
        &serde_json::to_vec(&f.org.page_records(&cursor, 0, 10, V)).unwrap(),
    )
    .unwrap();
    assert_eq!(written, Json::Array(built.clone()));
    assert_eq!(
        built[0]["Account"]["BillingAddress"]["city"],
        json!("Paris")
    );
    // Currency(18, 0): rounded to its scale when saved, a JSON number with a fraction.
    assert_eq!(built[0]["Account"]["AnnualRevenue"], json!(1501.0));
    assert_eq!(built[1]["Account"], Json::Null);
    // Audit stamps keep whole seconds; the query API writes milliseconds all the same.
    assert_eq!(
        built[0]["CreatedDate"],
        json!("2024-03-01T12:00:00.000+0000")
    );
}
