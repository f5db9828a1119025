//! The lag `sfpg status` shows means freshness: how far behind Salesforce the mirror may
//! be. An idle object whose polls come back caught up stays within one poll interval of
//! now, however old its newest record; an object whose polls fail falls behind by the
//! time they have been failing, and is fresh again once one succeeds.

use std::time::{Duration, Instant};

use sfpg_control::status::{self, ObjectStatus};
use sfpg_emulator::http::FailureRule;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, generated, quiet_settings};

/// The org's rate: one request every half second, so one object polls its changes about
/// every half second (quiet settings leave no other work due).
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Account, as status shows it.
async fn account(harness: &Harness) -> ObjectStatus {
    let client = harness.db.connect().await;
    let orgs = status::load(&client).await.unwrap();
    orgs[0]
        .objects
        .iter()
        .find(|o| o.object == "Account")
        .cloned()
        .unwrap()
}

/// Runs the org's sync as `sfpg sync` does, until the token is cancelled.
async fn run_sync(harness: &Harness) -> CancellationToken {
    harness
        .set_org(&format!(
            "rate_requests = 1, rate_period_ms = {}",
            POLL_INTERVAL.as_millis()
        ))
        .await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let (_reload, mut reloads) = mpsc::unbounded_channel();
        sync.run(&stop, &mut reloads).await.unwrap();
    });
    shutdown
}

/// Waits until Account is live and its lag known.
async fn until_fresh(harness: &Harness) -> ObjectStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let account = account(harness).await;
        if account.phase == "live" && account.lag_seconds.is_some() {
            return account;
        }
        assert!(Instant::now() < deadline, "never fresh: {account:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_idle_object_polled_to_date_lags_less_than_one_poll_interval() {
    let harness = Harness::start(generated(20), &["Account"]).await;
    let shutdown = run_sync(&harness).await;
    let first = until_fresh(&harness).await;
    // Its newest record changed days ago (generated records are 1 to 730 days old): that
    // is not how far behind the mirror is.
    assert!(first.newest_modstamp.is_some(), "{first:#?}");

    // Sampled for 3 s (6 polls): never more than one poll interval behind, plus the
    // poll's own round trip and the sampling's.
    let bound = POLL_INTERVAL.as_secs_f64() + 0.4;
    let mut lags = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        lags.push(account(&harness).await.lag_seconds.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();

    assert!(
        lags.iter().all(|lag| *lag < bound),
        "lags above {bound} s: {lags:?}"
    );
}

#[tokio::test]
async fn an_object_whose_polls_fail_lags_more_and_more() {
    let harness = Harness::start(generated(20), &["Account"]).await;
    let shutdown = run_sync(&harness).await;
    until_fresh(&harness).await;

    // Every query fails from now on.
    harness.emulator.fail_next(
        FailureRule::new(503, "SERVER_UNAVAILABLE")
            .times(100_000)
            .matching(Some("GET"), "/services/data/*/query*"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = account(&harness).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = account(&harness).await;
    let (before_lag, after_lag) = (before.lag_seconds.unwrap(), after.lag_seconds.unwrap());
    assert!(
        after_lag >= before_lag + 1.9 && after_lag > 2.0 + POLL_INTERVAL.as_secs_f64(),
        "the lag went from {before_lag} to {after_lag} s in 2 s of failing polls: {after:#?}"
    );
    assert_eq!(
        after.last_error_code.as_deref(),
        Some("SERVER_UNAVAILABLE"),
        "{after:#?}"
    );

    // Salesforce answers again: the next poll that catches up makes it fresh.
    harness.emulator.clear_faults();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let account = account(&harness).await;
        if account.lag_seconds.unwrap() < POLL_INTERVAL.as_secs_f64() + 0.4 {
            break;
        }
        assert!(Instant::now() < deadline, "never fresh again: {account:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
}
