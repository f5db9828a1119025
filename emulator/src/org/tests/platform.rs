//! Platform events in the org: the event object's describe, a create publishing at commit
//! with Salesforce's `OPERATION_ENQUEUED` result, typed and checked values, no records,
//! no SOQL, no update or delete, and `allOrNone` batches that publish nothing when they
//! roll back.

use super::*;
use crate::events::ReplayStart;

const TOPIC: &str = "Order_Event__e";

fn published(org: &Org) -> Vec<Arc<crate::events::PlatformEvent>> {
    org.platform_events().after(TOPIC, 0, 100).unwrap()
}

#[test]
fn the_event_object_is_described_as_salesforce_does() {
    let f = fixture();
    let describe = f.org.describe(TOPIC, V).unwrap();
    for (flag, value) in [
        ("createable", true),
        ("queryable", false),
        ("updateable", false),
        ("deletable", false),
        ("replicateable", false),
        ("retrieveable", false),
        ("custom", true),
    ] {
        assert_eq!(describe[flag], value, "{flag}");
    }
    assert_eq!(describe["keyPrefix"], "e01");
    let fields: Vec<&str> = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for standard in ["Id", "ReplayId", "CreatedDate", "CreatedById", "EventUuid"] {
        assert!(fields.contains(&standard), "{standard} in {fields:?}");
    }
    for absent in ["IsDeleted", "LastModifiedDate", "SystemModstamp", "OwnerId"] {
        assert!(!fields.contains(&absent), "{absent} in {fields:?}");
    }
    let field = |name: &str| {
        describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(field("Order_Number__c")["createable"], true);
    assert_eq!(field("Order_Number__c")["updateable"], false);
    assert_eq!(field("ReplayId")["createable"], false);
    assert_eq!(field("EventUuid")["length"], 36);
}

#[test]
fn a_create_publishes_at_commit_with_the_uuid_in_its_result() {
    let mut f = fixture();
    let admin = f.admin;
    let before = f
        .org
        .platform_events()
        .start(TOPIC, ReplayStart::Tip)
        .unwrap();
    let id = f
        .create(
            TOPIC,
            json!({"Order_Number__c": "17", "Has_Shipped__c": true, "Quantity__c": 3,
                   "Ship_Date__c": "2024-03-02"}),
        )
        .unwrap();
    assert_eq!(id.key_prefix(), "e01");
    let result = serde_json::to_value(f.org.created_result(id, None)).unwrap();
    assert_eq!(result["id"], id.as_str());
    assert_eq!(result["success"], true);
    assert_eq!(result["errors"][0]["statusCode"], "OPERATION_ENQUEUED");
    let uuid = result["errors"][0]["message"].as_str().unwrap().to_owned();
    assert_eq!(uuid.len(), 36);
    assert!(published(&f.org).is_empty(), "nothing before the commit");

    f.org.commit_changes("");
    let events = published(&f.org);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert!(event.replay_id > before);
    assert_eq!(event.id, id);
    assert_eq!(event.event_uuid, uuid);
    assert_eq!(event.created_by_id, admin);
    assert_eq!(event.fields["Order_Number__c"], "17");
    assert_eq!(event.fields["Has_Shipped__c"], true);
    assert_eq!(event.fields["Quantity__c"], 3.0);
    assert_eq!(event.fields["Ship_Date__c"], "2024-03-02");
    assert_eq!(event.fields["Note__c"], Json::Null);
    assert!(!event.fields.contains_key("EventUuid"));
    assert_eq!(f.org.record_count(TOPIC), 0, "events are never stored");
}

#[test]
fn values_are_checked_like_any_create() {
    let mut f = fixture();
    let too_long = f.create(TOPIC, json!({"Order_Number__c": "12345678901"}));
    assert_eq!(too_long.unwrap_err().error_code, "STRING_TOO_LONG");
    let unknown = f.create(TOPIC, json!({"Nope__c": 1}));
    assert_eq!(unknown.unwrap_err().error_code, "INVALID_FIELD");
    let read_only = f.create(TOPIC, json!({"ReplayId": "5"}));
    assert_eq!(
        read_only.unwrap_err().error_code,
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    f.org.commit_changes("");
    assert!(published(&f.org).is_empty());
}

#[test]
fn events_cannot_be_queried_updated_or_deleted() {
    let mut f = fixture();
    let id = f.create(TOPIC, json!({"Order_Number__c": "1"})).unwrap();
    f.org.commit_changes("");
    let query = f.org.query("SELECT Id FROM Order_Event__e", false);
    let Err(error) = query else {
        panic!("platform events are not queryable");
    };
    assert_eq!(error.error_code, "INVALID_TYPE");
    let admin = f.admin;
    let update = f.org.update(
        TOPIC,
        id.as_str(),
        &body(json!({"Order_Number__c": "2"})),
        &admin,
    );
    assert!(update.is_err());
    assert!(f.org.delete(TOPIC, id.as_str(), &admin).is_err());
    assert!(f.org.retrieve(TOPIC, id.as_str(), None, V).is_err());
}

#[test]
fn an_all_or_none_batch_that_rolls_back_publishes_nothing() {
    let mut f = fixture();
    let admin = f.admin;
    let event = |n: &str| record(TOPIC, json!({"Order_Number__c": n}));
    let results = f
        .org
        .collection_create(
            &[
                event("1"),
                record("Account", json!({"Name": "Fine"})),
                record("Contact", json!({"FirstName": "No last name"})),
            ],
            true,
            &admin,
        )
        .unwrap();
    assert!(results.iter().all(|r| !r.success));
    f.org.commit_changes("");
    assert!(
        published(&f.org).is_empty(),
        "rolled back: nothing published"
    );
    assert_eq!(f.org.record_count("Account"), 0);

    let results = f
        .org
        .collection_create(
            &[
                event("2"),
                record("Account", json!({"Name": "Kept"})),
                event("3"),
            ],
            true,
            &admin,
        )
        .unwrap();
    assert!(results.iter().all(|r| r.success));
    assert_eq!(results[0].errors[0].status_code, "OPERATION_ENQUEUED");
    assert!(results[1].errors.is_empty());
    f.org.commit_changes("");
    let numbers: Vec<Json> = published(&f.org)
        .iter()
        .map(|e| e.fields["Order_Number__c"].clone())
        .collect();
    assert_eq!(numbers, [json!("2"), json!("3")]);
}

#[test]
fn without_all_or_none_the_valid_events_are_published() {
    let mut f = fixture();
    let admin = f.admin;
    let results = f
        .org
        .collection_create(
            &[
                record(TOPIC, json!({"Order_Number__c": "ok"})),
                record(TOPIC, json!({"Order_Number__c": "far too long"})),
            ],
            false,
            &admin,
        )
        .unwrap();
    assert!(results[0].success && !results[1].success);
    f.org.commit_changes("");
    assert_eq!(published(&f.org).len(), 1);
}
