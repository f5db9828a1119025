//! The fault-injection behaviours of issue 4: an expired session logs in again once and
//! replays, a 503 and lock contention are retried, the exhausted daily limit is sent once,
//! slow answers time out and are retried.

use super::*;

#[tokio::test]
async fn an_expired_session_logs_in_again_once_and_replays() {
    let emulator = start(0).await;
    let client = client(&emulator);
    client.describe_global().await.unwrap();
    assert!(emulator.revoke_sessions(None, false) >= 1);
    emulator.clear_requests();

    client.describe_global().await.unwrap();

    assert_eq!(logins(&emulator), 1);
    let requests = api_requests(&emulator);
    let statuses: Vec<Option<u16>> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(401), Some(200)]);
}

#[tokio::test]
async fn a_session_past_its_lifetime_is_renewed() {
    let emulator = start(0).await;
    emulator.set_session_lifetime(Duration::from_millis(300));
    let client = client(&emulator);
    client.describe_global().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.describe_global().await.unwrap();
    assert_eq!(logins(&emulator), 2);
}

#[tokio::test]
async fn a_503_then_success() {
    let emulator = start(0).await;
    let client = client(&emulator);
    client.token().await.unwrap();
    emulator.fail_next(FailureRule::new(503, "SERVER_UNAVAILABLE"));
    client.describe_global().await.unwrap();
    let statuses: Vec<Option<u16>> = api_requests(&emulator).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(503), Some(200)]);
}

#[tokio::test]
async fn unable_to_lock_row_twice_then_success() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let account = client.sobject("Account");
    let id = account
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap();
    emulator.clear_requests();
    emulator.fail_next(FailureRule::new(400, "UNABLE_TO_LOCK_ROW").times(2));

    account
        .update(&id, &record(json!({"Name": "Acme Corp"})))
        .await
        .unwrap();

    let requests = api_requests(&emulator);
    let statuses: Vec<Option<u16>> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(400), Some(400), Some(204)]);
    assert!(requests.iter().all(|r| r.method == "PATCH"));
    let read = account.get(&id, &["Name"]).await.unwrap();
    assert_eq!(read["Name"], "Acme Corp");
}

#[tokio::test]
async fn the_exhausted_daily_limit_is_a_limit_error_sent_once() {
    let emulator = start(0).await;
    let client = client(&emulator);
    client.token().await.unwrap();
    emulator.set_daily_api_limit(100);
    emulator.consume_api_requests(100);
    emulator.clear_requests();

    let error = client.describe_global().await.unwrap_err();

    assert_eq!(error.class(), ErrorClass::Limit, "{error}");
    assert_eq!(error.error_code(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(403));
    assert_eq!(api_requests(&emulator).len(), 1);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let emulator = start(0).await;
    let config = config(&emulator).with_request_timeout(Duration::from_millis(300));
    let client = client_with(config, password(), Rate::per_second(1000).unwrap());
    client.token().await.unwrap();

    // Slow but within the timeout: answered.
    emulator.set_latency(Some(Latency {
        fixed_ms: 100,
        ..Latency::default()
    }));
    client.describe_global().await.unwrap();

    // Slower than the timeout: each attempt times out, and the last error says so. (The
    // emulator logs a request when it answers it, so abandoned attempts are counted by time.)
    emulator.set_latency(Some(Latency {
        fixed_ms: 2_000,
        ..Latency::default()
    }));
    let started = std::time::Instant::now();
    let error = client.describe_global().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
    // Four attempts of 300 ms, and backoffs of at most 10 + 20 + 40 ms between them.
    assert!(elapsed >= Duration::from_millis(1_200), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1_200 + 70 + 500),
        "{elapsed:?}"
    );

    // A create that timed out may have happened: it is not sent again.
    let started = std::time::Instant::now();
    let error = client
        .sobject("Account")
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}
