//! Composite end to end over an in-test org: references, the envelope's checks, a child referring to its parent, all-or-none, and single-record subrequests.

use axum::http::StatusCode;

use super::references::*;
use super::*;

fn lookup_in(body: JsonValue) -> impl Fn(&str) -> Option<JsonValue> {
    move |expression: &str| {
        let id = reference_id_of(expression);
        (id == "create0").then(|| navigate(&body, &expression[id.len()..]))?
    }
}

#[test]
fn references_follow_keys_and_indexes_case_sensitively() {
    let lookup = lookup_in(json!([
        {"id": "001A", "success": true},
        {"id": "001B", "success": true, "n": 3, "nested": {"City": "Lyon"}}
    ]));
    assert_eq!(
        substitute_text("x/@{create0[1].id}/y", &lookup).unwrap(),
        "x/001B/y"
    );
    assert_eq!(
        substitute_json(
            &json!({"AccountId": "@{create0[0].id}", "N": "@{create0[1].n}"}),
            &lookup
        )
        .unwrap(),
        json!({"AccountId": "001A", "N": 3})
    );
    assert_eq!(
        substitute_json(&json!("in @{create0[1].nested.City}"), &lookup).unwrap(),
        json!("in Lyon")
    );
    // Case-sensitive: neither the key nor the referenceId may change case.
    assert_eq!(
        substitute_text("@{create0[0].Id}", &lookup).unwrap_err(),
        "create0[0].Id"
    );
    assert!(substitute_text("@{Create0[0].id}", &lookup).is_err());
    assert!(substitute_text("@{create0[7].id}", &lookup).is_err());
    // A structure is not a value.
    assert!(substitute_text("@{create0[1].nested}", &lookup).is_err());
    assert_eq!(
        substitute_text("no references", &lookup).unwrap(),
        "no references"
    );
}

#[test]
fn the_envelope_is_checked_as_a_whole() {
    let one = |i: usize| json!({"method": "DELETE", "url": "/services/data/v62.0/composite/sobjects?ids=001A", "referenceId": format!("d{i}")});
    let body = |items: Vec<JsonValue>| {
        serde_json::to_vec(&json!({"allOrNone": true, "compositeRequest": items})).unwrap()
    };
    let (all_or_none, subrequests) = envelope(&body((0..5).map(one).collect())).unwrap();
    assert!(all_or_none);
    assert_eq!(subrequests.len(), 5);
    let error = envelope(&body((0..6).map(one).collect())).unwrap_err();
    assert_eq!(error.status, StatusCode::BAD_REQUEST);
    assert_eq!(error.error_code, "LIMIT_EXCEEDED");
    let record = |i: usize| json!({"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": format!("a{i}"), "body": {"Name": "x"}});
    assert!(envelope(&body((0..25).map(record).collect())).is_ok());
    assert!(envelope(&body((0..26).map(record).collect())).is_err());
    assert!(envelope(&body(vec![one(1), one(1)])).is_err());
    let bad_reference = json!({"method": "GET", "url": "/x", "referenceId": "a-b"});
    assert!(envelope(&body(vec![bad_reference])).is_err());
    let no_reference = json!({"method": "GET", "url": "/x"});
    assert!(envelope(&body(vec![no_reference])).is_err());
    let header = json!({"method": "GET", "url": "/x", "referenceId": "a", "httpHeaders": {"Content-Type": "text/plain"}});
    assert!(envelope(&body(vec![header])).is_err());
    assert!(envelope(&body(Vec::new())).is_err());
}

fn account(name: Option<&str>) -> JsonValue {
    match name {
        Some(name) => json!({"attributes": {"type": "Account"}, "Name": name}),
        None => json!({"attributes": {"type": "Account"}}),
    }
}

fn create(reference_id: &str, records: Vec<JsonValue>) -> Subrequest {
    Subrequest {
        method: "POST".into(),
        url: "/services/data/v62.0/composite/sobjects".into(),
        reference_id: reference_id.into(),
        body: Some(json!({"allOrNone": false, "records": records})),
    }
}

fn contact(reference_id: &str, account_id: &str, last_name: Option<&str>) -> Subrequest {
    let mut body = json!({"AccountId": account_id});
    if let Some(last_name) = last_name {
        body["LastName"] = json!(last_name);
    }
    Subrequest {
        method: "POST".into(),
        url: "/services/data/v62.0/sobjects/Contact".into(),
        reference_id: reference_id.into(),
        body: Some(body),
    }
}

fn org() -> (Org, Id) {
    let mut org = Org::new().unwrap();
    let user = org
        .add_user(&crate::org::NewUser::from_username("composite@example.com"))
        .unwrap();
    (org, user)
}

#[test]
fn a_child_refers_to_its_parent_created_in_the_same_request() {
    let (mut org, user) = org();
    let subrequests = [
        create(
            "accounts",
            vec![account(Some("Parent A")), account(Some("Parent B"))],
        ),
        contact("child", "@{accounts[1].id}", Some("Child")),
    ];
    let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
    assert!(
        responses.iter().all(SubResponse::succeeded),
        "{responses:?}"
    );
    assert_eq!(responses[1].http_status_code, 201);
    let parent = responses[0].body[1]["id"].as_str().unwrap().to_owned();
    let child = responses[1].body["id"].as_str().unwrap();
    let record = org
        .retrieve("Contact", child, Some("AccountId"), "62.0")
        .unwrap();
    assert_eq!(record["AccountId"], json!(parent));
    assert!(
        responses[1].http_headers["Location"]
            .as_str()
            .unwrap()
            .ends_with(child)
    );
    assert_eq!(org.record_count("Account"), 2);
}

#[test]
fn all_or_none_undoes_every_subrequest_and_halts_the_others() {
    let (mut org, user) = org();
    let subrequests = [
        create("accounts", vec![account(Some("Kept?"))]),
        // LastName is required.
        contact("child", "@{accounts[0].id}", None),
        create("never", vec![account(Some("Never run"))]),
    ];
    let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
    assert_eq!(org.record_count("Account"), 0);
    assert_eq!(org.record_count("Contact"), 0);
    assert_eq!(responses[1].http_status_code, 400);
    assert_eq!(responses[1].body[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    for halted in [&responses[0], &responses[2]] {
        assert_eq!(halted.http_status_code, 400);
        assert_eq!(halted.body[0]["errorCode"], "PROCESSING_HALTED");
    }
    let names: Vec<&str> = responses.iter().map(|r| r.reference_id.as_str()).collect();
    assert_eq!(names, ["accounts", "child", "never"]);
}

#[test]
fn all_or_none_forces_a_collections_subrequest_all_or_none() {
    let (mut org, user) = org();
    let subrequests = [
        create("first", vec![account(Some("First"))]),
        create("second", vec![account(Some("Fine")), account(None)]),
    ];
    let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
    assert_eq!(org.record_count("Account"), 0);
    let results = &responses[1].body;
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(responses[0].body[0]["errorCode"], "PROCESSING_HALTED");
}

#[test]
fn without_all_or_none_only_dependants_of_a_failure_are_skipped() {
    let (mut org, user) = org();
    let subrequests = [
        create("bad", vec![account(None)]),
        contact("orphan", "@{bad[0].id}", Some("Orphan")),
        create("good", vec![account(Some("Good"))]),
        contact("child", "@{good[0].id}", Some("Child")),
    ];
    let responses = run(&mut org, &subrequests, false, &user, "/services/data/v62.0");
    assert!(!responses[0].succeeded());
    assert_eq!(responses[1].http_status_code, 400);
    assert_eq!(responses[1].body[0]["errorCode"], "PROCESSING_HALTED");
    assert!(responses[2].succeeded() && responses[3].succeeded());
    assert_eq!(org.record_count("Account"), 1);
    assert_eq!(org.record_count("Contact"), 1);
}

#[test]
fn single_records_update_and_delete_and_unknown_resources_answer_404() {
    let (mut org, user) = org();
    let subrequests = [
        create("accounts", vec![account(Some("A")), account(Some("B"))]),
        Subrequest {
            method: "PATCH".into(),
            url: "/services/data/v62.0/sobjects/Account/@{accounts[0].id}".into(),
            reference_id: "rename".into(),
            body: Some(json!({"Name": "Renamed"})),
        },
        Subrequest {
            method: "DELETE".into(),
            url: "/services/data/v62.0/sobjects/Account/@{accounts[1].id}".into(),
            reference_id: "remove".into(),
            body: None,
        },
        Subrequest {
            method: "GET".into(),
            url: "/services/data/v62.0/sobjects/Account/@{accounts[0].id}?fields=Name".into(),
            reference_id: "read".into(),
            body: None,
        },
    ];
    let responses = run(&mut org, &subrequests, true, &user, "/services/data/v62.0");
    assert!(
        responses.iter().all(SubResponse::succeeded),
        "{responses:?}"
    );
    assert_eq!(responses[1].http_status_code, 204);
    assert_eq!(responses[1].body, JsonValue::Null);
    assert_eq!(responses[3].body["Name"], "Renamed");
    let removed = responses[0].body[1]["id"].as_str().unwrap();
    assert!(org.retrieve("Account", removed, None, "62.0").is_err());

    let unknown = [Subrequest {
        method: "POST".into(),
        url: "/services/data/v62.0/composite/tree/Account".into(),
        reference_id: "tree".into(),
        body: Some(json!({})),
    }];
    let responses = run(&mut org, &unknown, true, &user, "/services/data/v62.0");
    assert_eq!(responses[0].http_status_code, 404);
    assert_eq!(responses[0].body[0]["errorCode"], "NOT_FOUND");
}

fn order_event(reference_id: &str, number: &str) -> Subrequest {
    Subrequest {
        method: "POST".into(),
        url: "/services/data/v62.0/sobjects/Order_Event__e".into(),
        reference_id: reference_id.into(),
        body: Some(json!({"Order_Number__c": number})),
    }
}

fn published_orders(org: &Org) -> usize {
    org.platform_events()
        .after("Order_Event__e", 0, 100)
        .unwrap()
        .len()
}

/// "Publish After Commit": an event published by a Composite request that rolls back
/// under `allOrNone` is never delivered; one whose request commits is, with its UUID in
/// the subrequest's result.
#[test]
fn platform_events_follow_the_composite_transaction() {
    let (mut org, user) = org();
    let failing = [
        order_event("event", "1"),
        create("accounts", vec![account(Some("A")), account(None)]),
    ];
    let responses = run(&mut org, &failing, true, &user, "/services/data/v62.0");
    assert_eq!(responses[0].body[0]["errorCode"], "PROCESSING_HALTED");
    org.commit_changes("");
    assert_eq!(published_orders(&org), 0);

    let committing = [
        create("accounts", vec![account(Some("A"))]),
        order_event("event", "2"),
    ];
    let responses = run(&mut org, &committing, true, &user, "/services/data/v62.0");
    assert!(
        responses.iter().all(SubResponse::succeeded),
        "{responses:?}"
    );
    assert_eq!(responses[1].http_status_code, 201);
    let uuid = responses[1].body["errors"][0]["message"].clone();
    assert_eq!(
        responses[1].body["errors"][0]["statusCode"],
        "OPERATION_ENQUEUED"
    );
    org.commit_changes("");
    let events = org
        .platform_events()
        .after("Order_Event__e", 0, 100)
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(json!(events[0].event_uuid), uuid);
}
