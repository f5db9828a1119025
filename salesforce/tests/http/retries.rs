//! Which failures are retried, how often, and which are not.

use std::time::Duration;

use serde_json::json;
use sfpg_salesforce::{Error, ErrorClass, RetryPolicy, SalesforceId};

use crate::scripted::*;

const EMPTY_PAGE: &str = r#"{"totalSize":0,"done":true,"records":[]}"#;
const EDGE_503: &str = "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body>The server is temporarily unable to service your request.</body></html>";

#[tokio::test]
async fn a_503_from_the_edge_then_success() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::html(503, EDGE_503));
    server.reply(Reply::json(200, EMPTY_PAGE));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn unable_to_lock_row_twice_then_success() {
    let server = Scripted::start().await;
    let client = server.client();
    let locked = r#"[{"message":"unable to obtain exclusive access to this record or 1 records: 001D000000IqhSLIAZ","errorCode":"UNABLE_TO_LOCK_ROW","fields":[]}]"#;
    server.reply(Reply::json(400, locked));
    server.reply(Reply::json(400, locked));
    server.reply(Reply::empty(204));
    let id = SalesforceId::parse("001D000000IqhSLIAZ").unwrap();
    client
        .sobject("Account")
        .update(&id, &record(json!({"Name": "Acme"})))
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.method == "PATCH" && r.json() == json!({"Name": "Acme"}))
    );
}

#[tokio::test]
async fn lock_contention_is_retried_even_for_a_create() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::error(
        400,
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    ));
    server.reply(Reply::json(
        201,
        r#"{"id":"001D000000IqhSLIAZ","success":true,"errors":[]}"#,
    ));
    let id = client
        .sobject("Account")
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap();
    assert_eq!(id.as_str(), "001D000000IqhSLIAZ");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn the_daily_limit_is_a_limit_error_and_not_retried() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::error(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    ));
    let error = client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Limit);
    assert_eq!(error.error_code(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn the_concurrent_request_limit_is_retried() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::error(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentPerOrgLongTxn Limit exceeded.",
    ));
    server.reply(Reply::json(200, EMPTY_PAGE));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn validation_errors_are_not_retried() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        400,
        r#"[{"message":"Amount must be positive","errorCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","fields":["Amount__c"]}]"#,
    ));
    let error = client
        .sobject("Invoice__c")
        .create(&record(json!({"Amount__c": -1})))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::NotRetryable);
    assert_eq!(error.api_errors()[0].fields, vec!["Amount__c"]);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn attempts_are_bounded() {
    let server = Scripted::start().await;
    let client = server.client();
    for _ in 0..10 {
        server.reply(Reply::html(503, EDGE_503));
    }
    let error = client.describe_global().await.unwrap_err();
    match &error {
        Error::UnexpectedBody {
            status,
            content_type,
            excerpt,
            ..
        } => {
            assert_eq!(status.as_u16(), 503);
            assert_eq!(content_type, "text/html");
            assert_eq!(excerpt, "Service Unavailable");
        }
        other => panic!("not an UnexpectedBody: {other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        quick_retries().max_attempts as usize
    );
}

#[tokio::test]
async fn total_retry_time_is_bounded() {
    let server = Scripted::start().await;
    let policy = RetryPolicy {
        max_attempts: 100,
        initial_backoff: Duration::from_millis(40),
        max_backoff: Duration::from_millis(40),
        max_elapsed: Duration::from_millis(150),
    };
    let client = server.client_with(server.config().with_retry(policy), password());
    for _ in 0..100 {
        server.reply(Reply::error(
            503,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable.",
        ));
    }
    let started = std::time::Instant::now();
    client.describe_global().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(server.requests().len() < 100);
}

#[tokio::test]
async fn a_500_is_retried_for_a_read_but_not_for_a_create() {
    let server = Scripted::start().await;
    let client = server.client();
    let unknown =
        r#"[{"message":"An unexpected error occurred.","errorCode":"UNKNOWN_EXCEPTION"}]"#;
    server.reply(Reply::json(500, unknown));
    server.reply(Reply::json(200, EMPTY_PAGE));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 2);

    // The create may have happened before the 500: sending it again could duplicate it.
    server.reply(Reply::json(500, unknown));
    let error = client
        .sobject("Account")
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn slow_answers_time_out_and_reads_are_retried() {
    let server = Scripted::start().await;
    let config = server
        .config()
        .with_request_timeout(Duration::from_millis(200));
    let client = server.client_with(config, password());
    server.reply(Reply::json(200, EMPTY_PAGE).after(Duration::from_secs(2)));
    server.reply(Reply::json(200, EMPTY_PAGE).after(Duration::from_millis(20)));
    client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 2);

    for _ in 0..10 {
        server.reply(Reply::json(200, EMPTY_PAGE).after(Duration::from_secs(2)));
    }
    let error = client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
    assert_eq!(
        server.requests().len(),
        2 + quick_retries().max_attempts as usize
    );
}

#[tokio::test]
async fn a_create_that_timed_out_is_not_sent_again() {
    let server = Scripted::start().await;
    let config = server
        .config()
        .with_request_timeout(Duration::from_millis(200));
    let client = server.client_with(config, password());
    server.reply(
        Reply::json(
            201,
            r#"{"id":"001D000000IqhSLIAZ","success":true,"errors":[]}"#,
        )
        .after(Duration::from_secs(2)),
    );
    let error = client
        .sobject("Account")
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_all_or_none_batch_rolled_back_for_lock_contention_is_sent_again() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        200,
        r#"[{"id":null,"success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]},
            {"id":null,"success":false,"errors":[{"statusCode":"ALL_OR_NONE_OPERATION_ROLLED_BACK","message":"Record rolled back because not all records were valid and the request was using AllOrNone header","fields":[]}]}]"#,
    ));
    server.reply(Reply::json(
        200,
        r#"[{"id":"001D000000IqhSLIAZ","success":true,"errors":[]},{"id":"003D000000QV9n2IAD","success":true,"errors":[]}]"#,
    ));
    let records = [
        record(json!({"attributes": {"type": "Account"}, "Name": "Acme"})),
        record(json!({"attributes": {"type": "Contact"}, "LastName": "Ng"})),
    ];
    let results = client
        .collections()
        .all_or_none(true)
        .create(&records)
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.success));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn an_all_or_none_batch_with_a_real_failure_is_not_sent_again() {
    let server = Scripted::start().await;
    let client = server.client();
    server.reply(Reply::json(
        200,
        r#"[{"id":null,"success":false,"errors":[{"statusCode":"ALL_OR_NONE_OPERATION_ROLLED_BACK","message":"Record rolled back because not all records were valid and the request was using AllOrNone header","fields":[]}]},
            {"id":null,"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [LastName]","fields":["LastName"]}]}]"#,
    ));
    let records = [
        record(json!({"attributes": {"type": "Account"}, "Name": "Acme"})),
        record(json!({"attributes": {"type": "Contact"}})),
    ];
    let results = client
        .collections()
        .all_or_none(true)
        .create(&records)
        .await
        .unwrap();
    assert_eq!(results[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let server = Scripted::start().await;
    let config = sfpg_salesforce::Config::new(&url)
        .unwrap()
        .with_retry(quick_retries());
    let client = server.client_with(config, password());
    let error = client.describe_global().await.unwrap_err();
    assert!(error.is_connect(), "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
}
