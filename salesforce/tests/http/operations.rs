//! What each operation sends, and how it reads each documented answer.

use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use serde_json::json;
use sfpg_salesforce::{Conditional, Error, Record, Upserted};

use crate::scripted::*;

#[tokio::test]
async fn query_follows_next_records_url_with_the_batch_size() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        200,
        r#"{"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/0r8xx3FMjuDHXUcAAD-2",
            "records":[{"attributes":{"type":"Account","url":"/a/1"},"Id":"001D000000IqhSLIAZ"},
                       {"attributes":{"type":"Account","url":"/a/2"},"Id":"001M000000qfPySIAU"}]}"#,
    ));
    server.reply(Reply::json(
        200,
        r#"{"totalSize":3,"done":true,"records":[{"attributes":{"type":"Account","url":"/a/3"},"Id":"001D000000IqhSMIAZ"}]}"#,
    ));
    let pages: Vec<_> = client
        .query("SELECT Id FROM Account WHERE Name = 'A&B'")
        .batch_size(200)
        .pages()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].records.len() + pages[1].records.len(), 3);
    assert!(pages.iter().all(|p| p.total_size == 3));

    let requests = server.requests();
    assert_eq!(requests[0].path, "/services/data/v62.0/query");
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(requests[0].query.as_deref().unwrap().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        query,
        vec![(
            "q".to_owned(),
            "SELECT Id FROM Account WHERE Name = 'A&B'".to_owned()
        )]
    );
    assert_eq!(
        requests[1].path,
        "/services/data/v62.0/query/0r8xx3FMjuDHXUcAAD-2"
    );
    assert_eq!(requests[1].query, None);
    assert!(
        requests
            .iter()
            .all(|r| r.header("sforce-query-options") == Some("batchSize=200"))
    );
}

#[tokio::test]
async fn query_all_streams_records_including_deleted_ones() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        200,
        r#"{"totalSize":2,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/0r8xx3FMjuDHXUcAAD-1",
            "records":[{"attributes":{"type":"Account","url":"/a/1"},"Id":"001D000000IqhSLIAZ","IsDeleted":true}]}"#,
    ));
    server.reply(Reply::json(
        200,
        r#"{"totalSize":2,"done":true,"records":[{"attributes":{"type":"Account","url":"/a/2"},"Id":"001M000000qfPySIAU","IsDeleted":false}]}"#,
    ));
    let records = client
        .query_all("SELECT Id, IsDeleted FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["IsDeleted"], true);
    let requests = server.requests();
    assert_eq!(requests[0].path, "/services/data/v62.0/queryAll");
    assert_eq!(
        requests[1].path,
        "/services/data/v62.0/query/0r8xx3FMjuDHXUcAAD-1"
    );
    assert_eq!(requests[0].header("sforce-query-options"), None);
}

#[tokio::test]
async fn a_next_records_url_elsewhere_is_refused_without_sending_the_token() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        200,
        r#"{"totalSize":3,"done":false,"nextRecordsUrl":"https://attacker.example/services/data/v62.0/query/x","records":[]}"#,
    ));
    let error = client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Protocol { .. }), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_page_that_is_not_done_must_say_where_the_next_is() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        200,
        r#"{"totalSize":3,"done":false,"records":[]}"#,
    ));
    let error = client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Protocol { .. }), "{error}");
}

#[tokio::test]
async fn describe_if_modified_since_answers_not_modified() {
    let server = Scripted::start().await;
    let client = server.client();
    let since = Utc.with_ymd_and_hms(2024, 11, 6, 17, 38, 40).unwrap();

    server.reply(Reply::empty(304));
    let answer = client
        .sobject("Account")
        .describe_if_modified_since(since)
        .await
        .unwrap();
    assert_eq!(answer, Conditional::NotModified);

    server.reply(Reply::json(
        200,
        r#"{"name":"Account","keyPrefix":"001","fields":[{"name":"Id","type":"id"}]}"#,
    ));
    let answer = client
        .sobject("Account")
        .describe_if_modified_since(since)
        .await
        .unwrap();
    let describe = answer.modified().unwrap();
    assert_eq!(describe.fields[0].name, "Id");

    server.reply(Reply::empty(304));
    assert_eq!(
        client
            .describe_global_if_modified_since(since)
            .await
            .unwrap(),
        Conditional::NotModified
    );

    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/services/data/v62.0/sobjects/Account/describe"
    );
    assert_eq!(requests[2].path, "/services/data/v62.0/sobjects");
    assert!(
        requests
            .iter()
            .all(|r| r.header("if-modified-since") == Some("Wed, 06 Nov 2024 17:38:40 GMT"))
    );
}

#[tokio::test]
async fn record_crud() {
    let server = Scripted::start().await;
    let client = server.client();
    let account = client.sobject("Account");
    let acme = id("001D000000IqhSLIAZ");

    server.reply(Reply::json(
        201,
        r#"{"id":"001D000000IqhSLIAZ","success":true,"errors":[]}"#,
    ));
    assert_eq!(
        account
            .create(&record(json!({"Name": "Acme"})))
            .await
            .unwrap(),
        acme
    );

    server.reply(Reply::json(
        200,
        r#"{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001D000000IqhSLIAZ"},"Id":"001D000000IqhSLIAZ","Name":"Acme"}"#,
    ));
    let read = account.get(&acme, &["Id", "Name"]).await.unwrap();
    assert_eq!(read["Name"], "Acme");

    server.reply(Reply::empty(204));
    account
        .update(&acme, &record(json!({"Name": "Acme Corp"})))
        .await
        .unwrap();

    server.reply(Reply::empty(204));
    account.delete(&acme).await.unwrap();

    server.reply(Reply::json(
        404,
        r#"[{"errorCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]"#,
    ));
    let error = account.get(&acme, &[]).await.unwrap_err();
    assert_eq!(error.error_code(), Some("ENTITY_IS_DELETED"));

    let requests = server.requests();
    let lines: Vec<(String, String, Option<String>)> = requests
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone(), r.query.clone()))
        .collect();
    let path = "/services/data/v62.0/sobjects/Account/001D000000IqhSLIAZ".to_owned();
    assert_eq!(
        lines,
        vec![
            (
                "POST".into(),
                "/services/data/v62.0/sobjects/Account".into(),
                None
            ),
            ("GET".into(), path.clone(), Some("fields=Id%2CName".into())),
            ("PATCH".into(), path.clone(), None),
            ("DELETE".into(), path.clone(), None),
            ("GET".into(), path, None),
        ]
    );
    assert_eq!(requests[0].json(), json!({"Name": "Acme"}));
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests[2].json(), json!({"Name": "Acme Corp"}));
}

#[tokio::test]
async fn upsert_by_external_id_created_updated_and_ambiguous() {
    let server = Scripted::start().await;
    let client = server.client();
    let contact = client.sobject("Contact");
    let fields = record(json!({"LastName": "Ng"}));

    server.reply(Reply::json(
        201,
        r#"{"id":"003D000000QV9n2IAD","success":true,"errors":[],"created":true}"#,
    ));
    let created = contact.upsert("Ext_Id__c", "A/1 b", &fields).await.unwrap();
    assert_eq!(
        created,
        Upserted {
            id: Some(id("003D000000QV9n2IAD")),
            created: true
        }
    );

    server.reply(Reply::json(
        200,
        r#"{"id":"003D000000QV9n2IAD","success":true,"errors":[],"created":false}"#,
    ));
    let updated = contact.upsert("Ext_Id__c", "A/1 b", &fields).await.unwrap();
    assert!(!updated.created);

    server.reply(Reply::json(
        300,
        r#"["/services/data/v62.0/sobjects/Contact/003D000000QV9n2IAD","/services/data/v62.0/sobjects/Contact/003D000000QV9n3IAD"]"#,
    ));
    let error = contact
        .upsert("Ext_Id__c", "A/1 b", &fields)
        .await
        .unwrap_err();
    match error {
        Error::MultipleMatches {
            sobject,
            field,
            records,
        } => {
            assert_eq!((sobject.as_str(), field.as_str()), ("Contact", "Ext_Id__c"));
            assert_eq!(records.len(), 2);
        }
        other => panic!("not MultipleMatches: {other:?}"),
    }

    let requests = server.requests();
    assert!(requests.iter().all(|r| r.method == "PATCH"));
    // The external id value is one path segment, percent-encoded.
    assert_eq!(
        requests[0].path,
        "/services/data/v62.0/sobjects/Contact/Ext_Id__c/A%2F1%20b"
    );
    assert_eq!(
        server.requests().len(),
        3,
        "a 300 is an answer, not a retry"
    );
}

#[tokio::test]
async fn bad_names_are_refused_before_any_call() {
    let server = Scripted::start().await;
    let client = server.client();
    let error = client
        .sobject("Account/../User")
        .describe()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidRequest(_)));
    let error = client
        .sobject("Contact")
        .upsert("Ext Id", "1", &Record::new())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidRequest(_)));
    assert!(server.requests().is_empty());
    assert!(server.grants().is_empty());
}

#[tokio::test]
async fn collections_create_and_update_send_all_or_none() {
    let server = Scripted::start().await;
    let atomic = server.client().collections().all_or_none(true);
    let records = [
        record(json!({"attributes": {"type": "Account"}, "Name": "Acme"})),
        record(json!({"attributes": {"type": "Contact"}, "LastName": "Ng"})),
    ];

    server.reply(Reply::json(
        200,
        r#"[{"id":"001D000000IqhSLIAZ","success":true,"errors":[]},{"id":"003D000000QV9n2IAD","success":true,"errors":[]}]"#,
    ));
    let created = atomic.create(&records).await.unwrap();
    assert_eq!(created[1].id, Some(id("003D000000QV9n2IAD")));

    server.reply(Reply::json(
        200,
        r#"[{"id":"001D000000IqhSLIAZ","success":true,"errors":[]}]"#,
    ));
    atomic
        .update(&[record(json!({"attributes": {"type": "Account"}, "id": "001D000000IqhSLIAZ", "Name": "Acme Corp"}))])
        .await
        .unwrap();

    let requests = server.requests();
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/services/data/v62.0/composite/sobjects")
    );
    assert_eq!(
        requests[0].json(),
        json!({"allOrNone": true, "records": records})
    );
    assert_eq!(requests[1].method, "PATCH");
    assert_eq!(requests[1].json()["allOrNone"], true);
}

#[tokio::test]
async fn collections_upsert_by_external_id_reads_what_was_created() {
    let server = Scripted::start().await;
    server.reply(Reply::json(
        200,
        r#"[{"id":"003D000000QV9n2IAD","success":true,"errors":[],"created":true}]"#,
    ));
    let upserted = server
        .client()
        .collections()
        .upsert(
            "Contact",
            "Ext_Id__c",
            &[record(json!({"Ext_Id__c": "c-1", "LastName": "Ng"}))],
        )
        .await
        .unwrap();
    assert_eq!(upserted[0].created, Some(true));

    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/services/data/v62.0/composite/sobjects/Contact/Ext_Id__c"
    );
    assert_eq!(
        requests[0].json(),
        json!({"allOrNone": false, "records": [{"attributes": {"type": "Contact"}, "Ext_Id__c": "c-1", "LastName": "Ng"}]})
    );
}

#[tokio::test]
async fn collections_delete_reads_per_record_results() {
    let server = Scripted::start().await;
    server.reply(Reply::json(
        200,
        r#"[{"id":"001D000000IqhSLIAZ","success":true,"errors":[]},{"id":"003D000000QV9n2IAD","success":false,"errors":[{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]}]"#,
    ));
    let deleted = server
        .client()
        .collections()
        .delete(&[id("001D000000IqhSLIAZ"), id("003D000000QV9n2IAD")])
        .await
        .unwrap();
    assert_eq!(deleted[1].errors[0].status_code, "ENTITY_IS_DELETED");

    let requests = server.requests();
    assert_eq!(requests[0].method, "DELETE");
    assert_eq!(
        requests[0].query.as_deref(),
        Some("ids=001D000000IqhSLIAZ%2C003D000000QV9n2IAD&allOrNone=false")
    );
}

#[tokio::test]
async fn collections_retrieve_reads_null_for_a_missing_record() {
    let server = Scripted::start().await;
    server.reply(Reply::json(
        200,
        r#"[{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001D000000IqhSLIAZ"},"Id":"001D000000IqhSLIAZ","Name":"Acme"},null]"#,
    ));
    let retrieved = server
        .client()
        .collections()
        .retrieve(
            "Account",
            &[id("001D000000IqhSLIAZ"), id("001M000000qfPySIAU")],
            &["Id", "Name"],
        )
        .await
        .unwrap();
    assert!(retrieved[0].is_some() && retrieved[1].is_none());

    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/services/data/v62.0/composite/sobjects/Account"
    );
    assert_eq!(
        requests[0].query.as_deref(),
        Some("ids=001D000000IqhSLIAZ%2C001M000000qfPySIAU&fields=Id%2CName")
    );
}

#[tokio::test]
async fn a_malformed_collection_request_fails_as_a_whole() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        400,
        r#"[{"message":"Can't use the same referenceId more than once: ref1","errorCode":"INVALID_INPUT"}]"#,
    ));
    let error = client
        .collections()
        .create(&[record(
            json!({"attributes": {"type": "Account"}, "Name": "Acme"}),
        )])
        .await
        .unwrap_err();
    assert_eq!(error.error_code(), Some("INVALID_INPUT"));
    // Too many records, or a record without its object, never reach Salesforce.
    let many: Vec<Record> = (0..201)
        .map(|_| record(json!({"attributes": {"type": "Account"}})))
        .collect();
    assert!(matches!(
        client.collections().create(&many).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        client.collections().update(&[Record::new()]).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(client.collections().create(&[]).await.unwrap().is_empty());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn updated_and_deleted_windows() {
    let server = Scripted::start().await;
    let client = server.client();
    let start = Utc.with_ymd_and_hms(2013, 5, 5, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2013, 5, 10, 0, 0, 0).unwrap();
    server.reply(Reply::json(
        200,
        r#"{"ids":["001D000000IqhSLIAZ"],"latestDateCovered":"2013-05-09T23:59:00.000+0000"}"#,
    ));
    let updated = client.sobject("Account").updated(start, end).await.unwrap();
    assert_eq!(updated.ids, vec![id("001D000000IqhSLIAZ")]);
    server.reply(Reply::json(
        200,
        r#"{"deletedRecords":[{"id":"001M000000qfPySIAU","deletedDate":"2013-05-07T22:07:19.000+0000"}],"earliestDateAvailable":"2013-05-03T15:57:00.000+0000","latestDateCovered":"2013-05-09T23:59:00.000+0000"}"#,
    ));
    let deleted = client.sobject("Account").deleted(start, end).await.unwrap();
    assert_eq!(deleted.deleted_records[0].id, id("001M000000qfPySIAU"));

    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/services/data/v62.0/sobjects/Account/updated"
    );
    assert_eq!(
        requests[1].path,
        "/services/data/v62.0/sobjects/Account/deleted"
    );
    let expected = "start=2013-05-05T00%3A00%3A00%2B00%3A00&end=2013-05-10T00%3A00%3A00%2B00%3A00";
    assert!(
        requests
            .iter()
            .all(|r| r.query.as_deref() == Some(expected))
    );
}

#[tokio::test]
async fn versions_need_no_token() {
    let server = Scripted::start().await;
    let client = server.client();
    let versions = client.versions().await.unwrap();
    assert_eq!(versions.last().unwrap().version, "62.0");
    let request = &server.requests()[0];
    assert_eq!(request.path, "/services/data/");
    assert_eq!(request.header("authorization"), None);
    assert!(server.grants().is_empty());
}

#[tokio::test]
async fn every_call_names_sfpg_and_usage_is_tracked() {
    let server = Scripted::start().await;
    let client = server.client();
    assert_eq!(client.api_usage(), None);
    client.describe_global().await.ok();
    assert_eq!(client.api_usage().unwrap().api.used, 1);

    server.reply(
        Reply::json(200, r#"{"totalSize":0,"done":true,"records":[]}"#).header(
            "Sforce-Limit-Info",
            "api-usage=25/5000; per-app-api-usage=17/250(appName=sfpg)",
        ),
    );
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    let usage = client.api_usage().unwrap();
    assert_eq!((usage.api.used, usage.api.max), (25, 5000));
    assert_eq!(usage.per_app.unwrap().app_name, "sfpg");

    let all = server.token_requests().into_iter().chain(server.requests());
    for request in all {
        assert_eq!(
            request.header("sforce-call-options"),
            Some("client=sfpg"),
            "{}",
            request.path
        );
    }
}
