//! Upserts by external Id: create, update, or the list of matches; and lookups written by a
//! parent's external Id.

use super::*;

/// Upserts `fields` into the record of `object` whose `field` is `value`, as the admin,
/// in API version `version`; or updates only, when `update_only`.
fn upsert_as_admin(
    f: &mut Fixture,
    (object, field, value): (&str, &str, &str),
    fields: Json,
    version: &str,
    update_only: bool,
) -> Result<UpsertOutcome, ApiError> {
    let admin = f.admin;
    f.org.upsert(
        object,
        field,
        value,
        &body(fields),
        &admin,
        version,
        update_only,
    )
}

fn upsert(
    f: &mut Fixture,
    key: (&str, &str, &str),
    fields: Json,
) -> Result<UpsertOutcome, ApiError> {
    upsert_as_admin(f, key, fields, V, false)
}

fn upsert_in(
    f: &mut Fixture,
    key: (&str, &str, &str),
    fields: Json,
    version: &str,
) -> Result<UpsertOutcome, ApiError> {
    upsert_as_admin(f, key, fields, version, false)
}

/// An upsert that may only update a record that exists.
fn upsert_existing(
    f: &mut Fixture,
    key: (&str, &str, &str),
    fields: Json,
) -> Result<UpsertOutcome, ApiError> {
    upsert_as_admin(f, key, fields, V, true)
}

#[test]
fn upsert_creates_updates_or_lists_the_matches() {
    let mut f = fixture();
    let created = upsert(
        &mut f,
        ("Invoice__c", "External_Id__c", "X-1"),
        json!({"Amount__c": 5}),
    )
    .unwrap();
    let UpsertOutcome::Created(id) = created else {
        panic!("{created:?}")
    };
    assert_eq!(f.get("Invoice__c", &id)["External_Id__c"], json!("X-1"));
    let updated = upsert(
        &mut f,
        ("invoice__c", "external_id__c", "X-1"),
        json!({"Amount__c": 6}),
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
    let multiple = upsert_in(
        &mut f,
        ("Product2", "ExternalId", "SKU"),
        json!({"Name": "C"}),
        "v60.0",
    )
    .unwrap();
    assert_eq!(
        multiple,
        UpsertOutcome::Multiple(vec![
            format!("/services/data/v60.0/sobjects/Product2/{p1}"),
            format!("/services/data/v60.0/sobjects/Product2/{p2}"),
        ])
    );
    let e = upsert(&mut f, ("Invoice__c", "Amount__c", "1"), json!({})).unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (404, "NOT_FOUND"));
    let e =
        upsert_existing(&mut f, ("Invoice__c", "External_Id__c", "X-2"), json!({})).unwrap_err();
    assert_eq!(e.status, 404);
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
