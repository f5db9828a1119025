//! sObject Collections: `allOrNone` rolls back creates, updates and deletes; without it
//! each record stands alone; malformed requests are refused whole; upserts report what they
//! created; retrieves answer null for missing Ids.

use super::*;

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
