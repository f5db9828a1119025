//! Salesforce's error bodies read and classified: arrays with and without fields, the daily
//! and the concurrent limit, lock contention, validation errors, an edge's HTML page, empty
//! and long bodies, a lone error object, per-record errors.

use super::*;

fn endpoint() -> Endpoint {
    Endpoint {
        method: Method::GET,
        path: "/services/data/v62.0/query".into(),
    }
}

fn from(status: u16, content_type: Option<&str>, body: &str) -> Error {
    let status = StatusCode::from_u16(status).unwrap();
    Error::from_response(endpoint(), status, content_type, body.as_bytes())
}

#[test]
fn error_array_without_fields() {
    let error = from(
        401,
        Some("application/json"),
        r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
    );
    assert_eq!(error.error_code(), Some("INVALID_SESSION_ID"));
    assert_eq!(error.api_errors()[0].fields, Vec::<String>::new());
    assert_eq!(error.class(), ErrorClass::Auth);
    assert!(error.is_invalid_session());
    assert_eq!(
        error.to_string(),
        "GET /services/data/v62.0/query answered 401 Unauthorized: INVALID_SESSION_ID: Session expired or invalid"
    );
}

#[test]
fn error_array_with_fields_and_several_entries() {
    let error = from(
        400,
        Some("application/json;charset=UTF-8"),
        r#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]},
            {"message":"Account ID: id value of incorrect type: 001","errorCode":"MALFORMED_ID","fields":["Id"]}]"#,
    );
    let errors = error.api_errors();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].fields, vec!["LastName"]);
    assert_eq!(errors[1].error_code, "MALFORMED_ID");
    assert_eq!(error.class(), ErrorClass::NotRetryable);
    assert!(error.to_string().contains(
        "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] [LastName]; MALFORMED_ID"
    ));
}

#[test]
fn empty_and_null_fields() {
    let error = from(
        404,
        None,
        r#"[{"errorCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]"#,
    );
    assert_eq!(error.api_errors()[0].fields, Vec::<String>::new());
    let error = from(
        400,
        None,
        r#"[{"errorCode":"INVALID_FIELD","message":"x","fields":null}]"#,
    );
    assert_eq!(error.error_code(), Some("INVALID_FIELD"));
}

#[test]
fn daily_limit_is_a_limit_and_the_concurrent_limit_is_retryable() {
    let daily = from(
        403,
        None,
        r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
    );
    assert_eq!(daily.class(), ErrorClass::Limit);
    assert!(!daily.is_retryable());
    let concurrent = from(
        403,
        None,
        r#"[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
    );
    assert_eq!(concurrent.class(), ErrorClass::Retryable);
}

#[test]
fn lock_contention_and_server_errors_are_retryable() {
    let locked = from(
        400,
        None,
        r#"[{"message":"unable to obtain exclusive access to this record","errorCode":"UNABLE_TO_LOCK_ROW","fields":[]}]"#,
    );
    assert_eq!(locked.class(), ErrorClass::Retryable);
    let unavailable = from(
        503,
        None,
        r#"[{"message":"down","errorCode":"SERVER_UNAVAILABLE"}]"#,
    );
    assert_eq!(unavailable.class(), ErrorClass::Retryable);
    let internal = from(
        500,
        None,
        r#"[{"message":"An unexpected error occurred","errorCode":"UNKNOWN_EXCEPTION"}]"#,
    );
    assert_eq!(internal.class(), ErrorClass::Retryable);
}

#[test]
fn validation_errors_are_not_retryable() {
    for code in [
        "MALFORMED_QUERY",
        "INVALID_FIELD",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "DUPLICATE_VALUE",
        "NOT_FOUND",
    ] {
        let status = if code == "NOT_FOUND" { 404 } else { 400 };
        let body = format!(r#"[{{"message":"m","errorCode":"{code}"}}]"#);
        assert_eq!(
            from(status, None, &body).class(),
            ErrorClass::NotRetryable,
            "{code}"
        );
    }
}

#[test]
fn html_page_from_the_edge() {
    let page = "<!DOCTYPE html>\n<html><head>\n  <title>Service Unavailable</title></head>\n<body><h1>The server is temporarily unable to service your request.</h1></body></html>";
    let error = from(503, Some("text/html"), page);
    match &error {
        Error::UnexpectedBody {
            content_type,
            excerpt,
            ..
        } => {
            assert_eq!(content_type, "text/html");
            assert_eq!(excerpt, "Service Unavailable");
        }
        other => panic!("not an UnexpectedBody: {other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::Retryable);
    let no_route = from(420, Some("text/html"), "<html><body>No route</body></html>");
    assert_eq!(no_route.class(), ErrorClass::Retryable);
    let forbidden = from(
        403,
        Some("text/html"),
        "<html><body>Forbidden</body></html>",
    );
    assert_eq!(forbidden.class(), ErrorClass::NotRetryable);
}

#[test]
fn empty_and_long_bodies() {
    let error = from(502, None, "");
    assert!(
        error
            .to_string()
            .ends_with("502 Bad Gateway with a non-JSON body: (empty)"),
        "{error}"
    );
    let long = "x ".repeat(1000);
    let Error::UnexpectedBody { excerpt, .. } = from(500, Some("text/plain"), &long) else {
        panic!("expected UnexpectedBody");
    };
    assert_eq!(excerpt.chars().count(), 201);
    // A JSON body that is not an error array is still reported, not misread.
    let error = from(500, Some("application/json"), r#"{"unexpected":true}"#);
    assert!(matches!(error, Error::UnexpectedBody { .. }));
    let error = from(400, Some("application/json"), "[]");
    assert!(matches!(error, Error::UnexpectedBody { .. }));
}

#[test]
fn single_error_object() {
    let error = from(
        404,
        None,
        r#"{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}"#,
    );
    assert_eq!(error.error_code(), Some("NOT_FOUND"));
}

#[test]
fn record_error_uses_status_code() {
    let error: RecordError = serde_json::from_str(
        r#"{"statusCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","message":"Amount must be positive","fields":["Amount__c"]}"#,
    )
    .unwrap();
    assert_eq!(error.status_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(error.fields, vec!["Amount__c"]);
}

/// Bulk API answers keep their errorCode, and the two a job reader reacts to are named.
#[test]
fn bulk_job_gone_and_not_complete() {
    let gone = from(
        404,
        Some("application/json"),
        r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#,
    );
    assert!(gone.is_job_gone());
    assert!(!gone.is_job_not_complete());
    assert_eq!(gone.error_code(), Some(NOT_FOUND));
    assert_eq!(gone.class(), ErrorClass::NotRetryable);

    let not_complete = from(
        412,
        Some("application/json"),
        r#"[{"errorCode":"JOB_NOT_COMPLETE","message":"Job is not complete"}]"#,
    );
    assert!(not_complete.is_job_not_complete());
    assert!(!not_complete.is_job_gone());
    assert_eq!(not_complete.error_code(), Some(JOB_NOT_COMPLETE));
    assert!(
        !not_complete.is_retryable(),
        "retried by the results reader, not the request path"
    );

    let other_version = from(
        409,
        Some("application/json"),
        r#"[{"errorCode":"INVALIDJOBSTATE","message":"wrong API version"}]"#,
    );
    assert!(!other_version.is_job_gone() && !other_version.is_job_not_complete());
    assert_eq!(other_version.error_code(), Some("INVALIDJOBSTATE"));
}

#[test]
fn streaming_errors_are_told_apart() {
    let invalid = Error::ReplayIdInvalid {
        channel: "/data/ChangeEvents".to_owned(),
        replay_id: 42,
        message: "400::The replayId {42} you provided was invalid.".to_owned(),
    };
    assert!(invalid.is_replay_id_invalid());
    assert_eq!(invalid.class(), ErrorClass::NotRetryable);
    assert!(invalid.to_string().contains("replay id 42"), "{invalid}");

    let endpoint = Endpoint {
        method: Method::POST,
        path: "/cometd/62.0".to_owned(),
    };
    let login = Error::Bayeux {
        endpoint: endpoint.clone(),
        channel: "/meta/handshake".to_owned(),
        error: "401::Authentication invalid".to_owned(),
    };
    assert_eq!(login.class(), ErrorClass::Auth);
    assert!(!login.is_replay_id_invalid());
    let unknown_channel = Error::Bayeux {
        endpoint,
        channel: "/meta/subscribe".to_owned(),
        error: "400::The channel you requested to subscribe to does not exist".to_owned(),
    };
    assert_eq!(unknown_channel.class(), ErrorClass::NotRetryable);
    assert!(!unknown_channel.may_have_taken_effect());
}
