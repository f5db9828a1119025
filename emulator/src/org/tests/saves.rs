//! Creating, updating and deleting one record: Ids, audit fields, owners and defaults;
//! required, length, picklist, unique, read-only and lookup checks; validation rules; bad
//! bodies; numbers; auto-numbers; formulas across a lookup; modification stamps; record
//! URLs; the recycle bin.

use super::*;

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
