//! `/metrics` of the real binary, end to end: `sfpg run --metrics-listen` mirrors an
//! emulated org and proxies a client while the test scrapes, parsing each scrape with
//! Python's `prometheus_client` (a real Prometheus text parser). The counters and gauges
//! move as they should through a backfill, a poll, a change event, a push, a refusal and a
//! push of unknown outcome.
//! And the listener's access rules: off loopback only with a token, which every request
//! must then carry.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod cdc;
#[path = "metrics/support.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use sfpg_emulator::http::RunningEmulator;
use sfpg_emulator::http::{DropRule, RequestMatcher};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::{RUN_WITH_METRICS, spawn_listening, spawn_with_metrics};
use sfpg_testkit::process::{TestProcess, eventually};
use support::{Scrape, fetch, scrape};
use tokio_postgres::error::SqlState;

use cdc::SFPG;

const OBJECTS: [&str; 3] = ["Account", "Contact", "Invoice__c"];
const ACME: (&str, &str) = ("org", "acme");

/// `sfpg run` with the proxy and the metrics listener on free ports of 127.0.0.1.
fn start_run(db: &TestDatabase) -> (TestProcess, SocketAddr, SocketAddr) {
    spawn_with_metrics(SFPG.at(db.url(), &RUN_WITH_METRICS))
}

/// Scrapes until `holds` is true of a scrape; returns that scrape.
async fn scrape_until(addr: SocketAddr, what: &str, holds: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    eventually(what, Duration::from_secs(60), async || {
        let scraped = scrape(addr).await;
        let held = holds(&scraped);
        last = Some(scraped);
        held
    })
    .await;
    last.unwrap()
}

fn records_written(scrape: &Scrape, source: &str) -> f64 {
    scrape.count("sfpg_records_written_total", &[ACME, ("source", source)])
}

/// Live records of `objects` in the org.
fn org_records(emulator: &RunningEmulator) -> usize {
    OBJECTS.iter().map(|o| cdc::ids(emulator, o).len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_backfill_a_poll_an_event_a_push_and_a_refusal() {
    let emulator = sfpg_emulator::http::start(sfpg_testkit::world::generated(30, 7))
        .await
        .unwrap();
    let db = TestDatabase::create().await;
    let pubsub = ["--pubsub-endpoint", emulator.pubsub_endpoint()];
    SFPG.add_org(&db, "acme", emulator.instance_url(), &OBJECTS, &pubsub)
        .await;
    SFPG.set_rate_per_second(&db, "acme", 20).await;
    // Polling first; the stream is turned on later.
    SFPG.run(&db, &["org", "set-cdc", "acme", "off"]).await;
    let client = db.connect().await;
    let (run, proxy, metrics) = start_run(&db);

    sfpg_testkit::world::wait_all_live(&client, Duration::from_secs(90)).await;
    after_the_backfill(metrics, &emulator).await;
    let accounts = cdc::ids(&emulator, "Account");
    after_a_poll(metrics, &emulator, &accounts[0]).await;
    SFPG.run(
        &db,
        &["org", "set-cdc", "acme", "on", "--transport", "cometd"],
    )
    .await;
    cdc::wait_stream(&client, Duration::from_secs(90), "connected", |s| {
        s.0 == "connected"
    })
    .await;
    after_an_event(metrics, &emulator, &accounts[1]).await;
    let through = db.connect_via(proxy).await;
    let pushed = after_a_push(metrics, &through, &accounts[2]).await;
    let after =
        after_a_refusal_and_an_unknown_outcome(metrics, &emulator, &through, &accounts, &pushed)
            .await;
    every_metric_is_described(&after);
    drop(through);
    run.stop_cleanly(Duration::from_secs(60)).await;
}

/// The backfill: every record written once, by the backfill; requests counted by kind;
/// the org's usage as Salesforce reports it; each object's freshness.
async fn after_the_backfill(metrics: SocketAddr, emulator: &RunningEmulator) {
    let backfilled = scrape_until(metrics, "every object fresh", |s| {
        OBJECTS.iter().all(|object| {
            s.get("sfpg_freshness_lag_seconds", &[ACME, ("object", object)])
                .is_some()
        })
    })
    .await;
    assert_eq!(
        records_written(&backfilled, "backfill"),
        org_records(emulator) as f64,
        "{}",
        backfilled.body
    );
    assert!(
        backfilled.count(
            "sfpg_api_requests_total",
            &[ACME, ("kind", "query"), ("outcome", "ok")]
        ) > 0.0
    );
    assert!(
        backfilled.count(
            "sfpg_api_requests_total",
            &[ACME, ("kind", "auth"), ("outcome", "ok")]
        ) >= 1.0
    );
    let used = backfilled.get("sfpg_api_daily_usage", &[ACME]).unwrap();
    let allocation = backfilled
        .get("sfpg_api_daily_allocation", &[ACME])
        .unwrap();
    assert!(used > 0.0 && allocation > used, "{used} of {allocation}");
    assert!(backfilled.count("sfpg_rate_limiter_wait_seconds_count", &[ACME]) > 0.0);
    for object in OBJECTS {
        let lag = backfilled
            .get("sfpg_freshness_lag_seconds", &[ACME, ("object", object)])
            .unwrap();
        assert!((0.0..60.0).contains(&lag), "{object}: lag {lag}");
    }
    // Change Data Capture is off: no state is current.
    assert_eq!(backfilled.count("sfpg_cdc_state", &[ACME]), 0.0);
    assert_eq!(
        backfilled
            .type_of("sfpg_proxy_journal_pending_repair")
            .as_deref(),
        Some("gauge")
    );
    assert_eq!(
        backfilled.get("sfpg_proxy_journal_pending_repair", &[]),
        Some(0.0)
    );
}

/// A poll: another user's change is read by polling and written.
async fn after_a_poll(metrics: SocketAddr, emulator: &RunningEmulator, account: &str) {
    emulator
        .update_as(
            "Account",
            account,
            &cdc::fields(json!({"Phone": "555-0001"})),
            None,
        )
        .unwrap();
    let polled = scrape_until(metrics, "the change polled", |s| {
        records_written(s, "poll") >= 1.0
    })
    .await;
    let since = polled
        .get(
            "sfpg_seconds_since_last_success",
            &[ACME, ("object", "Account")],
        )
        .unwrap();
    assert!(since < 30.0, "seconds since the last success: {since}");
    assert_eq!(records_written(&polled, "cdc"), 0.0);
}

/// An event: with the stream on, a change arrives as a change event.
async fn after_an_event(metrics: SocketAddr, emulator: &RunningEmulator, account: &str) {
    emulator
        .update_as(
            "Account",
            account,
            &cdc::fields(json!({"Phone": "555-0002"})),
            None,
        )
        .unwrap();
    // (A gauge read from the status rows may lag one scrape on a loaded machine: the
    // refresh is given 5 s.)
    let streamed = scrape_until(metrics, "the event applied", |s| {
        records_written(s, "cdc") >= 1.0
            && s.get("sfpg_cdc_last_replay_age_seconds", &[ACME]).is_some()
    })
    .await;
    assert_eq!(
        streamed.get("sfpg_cdc_state", &[ACME, ("state", "connected")]),
        Some(1.0),
        "{}",
        streamed.body
    );
    assert_eq!(
        streamed.get("sfpg_cdc_state", &[ACME, ("state", "down")]),
        Some(0.0)
    );
    assert!(
        streamed
            .get("sfpg_cdc_last_replay_age_seconds", &[ACME])
            .is_some()
    );
}

/// A push: the client's UPDATE reaches Salesforce and commits.
async fn after_a_push(
    metrics: SocketAddr,
    through: &tokio_postgres::Client,
    account: &str,
) -> Scrape {
    let before = scrape(metrics).await;
    assert!(before.count("sfpg_proxy_client_connections", &[]) >= 1.0);
    through
        .execute(
            "UPDATE acme.account SET billingcity = 'Metrics City' WHERE sfid = $1",
            &[&account],
        )
        .await
        .unwrap();
    let pushed = scrape(metrics).await;
    let committed = [("outcome", "committed")];
    assert_eq!(
        pushed.count("sfpg_proxy_transactions_total", &committed)
            - before.count("sfpg_proxy_transactions_total", &committed),
        1.0
    );
    for histogram in [
        "sfpg_proxy_push_seconds",
        "sfpg_proxy_push_salesforce_seconds",
    ] {
        let count = format!("{histogram}_count");
        assert_eq!(
            pushed.count(&count, &[]) - before.count(&count, &[]),
            1.0,
            "{histogram}"
        );
        assert_eq!(pushed.type_of(&count).as_deref(), Some("histogram"));
    }
    assert!(
        pushed.count("sfpg_proxy_push_salesforce_seconds_sum", &[])
            <= pushed.count("sfpg_proxy_push_seconds_sum", &[])
    );
    assert_eq!(
        records_written(&pushed, "write_back") - records_written(&before, "write_back"),
        1.0
    );
    pushed
}

/// A refusal, with the client's SQLSTATE class as the label; then a push of unknown
/// outcome, counted as neither committed nor refused.
async fn after_a_refusal_and_an_unknown_outcome(
    metrics: SocketAddr,
    emulator: &RunningEmulator,
    through: &tokio_postgres::Client,
    accounts: &[String],
    pushed: &Scrape,
) -> Scrape {
    let committed = [("outcome", "committed")];
    // A refusal: Salesforce's validation rule refuses a negative invoice; the client's
    // SQLSTATE class is the label.
    let refused = through
        .batch_execute(&format!(
            "INSERT INTO acme.invoice__c (account__c, amount__c) VALUES ('{}', -100)",
            accounts[0]
        ))
        .await
        .unwrap_err();
    let class = &refused.code().unwrap().code()[..2];
    let after = scrape(metrics).await;
    assert_eq!(
        after.count(
            "sfpg_proxy_transactions_total",
            &[("outcome", "refused"), ("sqlstate_class", class)]
        ),
        1.0,
        "{}",
        after.body
    );
    assert_eq!(
        after.count("sfpg_proxy_transactions_total", &committed),
        pushed.count("sfpg_proxy_transactions_total", &committed)
    );
    // An unknown outcome: the push's request goes unanswered, so Salesforce may have
    // applied it; the client hears 08007, and it is neither committed nor refused.
    emulator.drop_next(DropRule {
        matcher: RequestMatcher {
            method: Some("POST".into()),
            path: Some("*/composite".into()),
        },
        count: 1,
        after_ms: None,
    });
    let error = through
        .execute(
            "UPDATE acme.account SET billingcity = 'Maybe City' WHERE sfid = $1",
            &[&accounts[1]],
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&SqlState::TRANSACTION_RESOLUTION_UNKNOWN),
        "{error}"
    );
    let after = scrape(metrics).await;
    assert_eq!(
        after.count("sfpg_proxy_transactions_total", &[("outcome", "unknown")]),
        1.0
    );
    assert_eq!(
        after.count("sfpg_proxy_transactions_total", &[("outcome", "refused")]),
        1.0
    );
    after
}

/// Every metric recorded is described (observe/src/metrics.rs), with its help.
fn every_metric_is_described(after: &Scrape) {
    for line in after.body.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let name = typed.split(' ').next().unwrap();
            assert!(
                after.body.contains(&format!("# HELP {name} ")),
                "{name} has no description"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_listener_needs_a_token_and_every_request_carries_it() {
    let db = TestDatabase::create().await;
    // Without a token: refused at start, before anything else runs.
    let output = SFPG
        .output(
            &db,
            &[
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "0.0.0.0:0",
            ],
        )
        .await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let said = sfpg_testkit::binary::text(&output);
    assert!(
        said.contains(
            "--metrics-listen 0.0.0.0:0 is reachable from other machines; set --metrics-token"
        ),
        "{said}"
    );

    // With one: served, and a request without it, or with another, gets 401.
    let args = [
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "0.0.0.0:0",
        "--metrics-token",
        "s3cret-token",
    ];
    let (mut proxy, _) = spawn_listening(SFPG.at(db.url(), &args));
    let line = proxy.wait_for_line(Duration::from_secs(10), |line| {
        line.starts_with("sfpg metrics on ")
    });
    let port: u16 = line
        .trim()
        .trim_end_matches("/metrics")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (status, body) = fetch(addr, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(fetch(addr, Some("wrong-token")).await.0, 401);
    let (status, body) = fetch(addr, Some("s3cret-token")).await;
    assert_eq!(status, 200);
    assert!(body.contains("sfpg_proxy_client_connections"), "{body}");
    proxy.stop_cleanly(Duration::from_secs(30)).await;
}
