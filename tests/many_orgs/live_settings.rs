//! A rate limit and a budget changed through the CLI while `sfpg sync` runs take effect
//! within seconds, as the emulator's request log shows.

use std::time::Duration;

use sfpg_emulator::http::LoggedRequest;
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::{eventually, eventually_some};

use super::{add_org, at, counted, emulator, gaps, now, run, start_sync, stop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_set_with_the_cli_takes_effect_within_two_seconds() {
    // Twenty thousand records at 200 a page, and polling once live: the sync never runs
    // out of requests to make, so the request log shows the limiter's pace.
    let salesforce = emulator(20_000, 31).await;
    let db = TestDatabase::create().await;
    add_org(&db, "acme", &salesforce, "1", "3s").await;
    // `org add` checked the objects with a request of its own: the pace measured is the
    // sync's, from the request after it.
    let registered = salesforce.requests(0).last().map_or(0, |r| r.seq);
    let by_sync = || -> Vec<LoggedRequest> {
        counted(&salesforce)
            .into_iter()
            .filter(|r| r.seq > registered)
            .collect()
    };
    let sync = start_sync(&db, &[]);

    eventually(
        "four requests at 1 per 3 s",
        Duration::from_secs(30),
        async || by_sync().len() >= 4,
    )
    .await;
    let before_change = now();
    let faster = [
        "org",
        "set-rate-limit",
        "acme",
        "--requests",
        "5",
        "--per",
        "1s",
    ];
    run(&db, &faster).await;
    let changed = now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop(sync).await;

    let (before, after): (Vec<LoggedRequest>, Vec<LoggedRequest>) =
        by_sync().into_iter().partition(|r| at(r) < before_change);
    let slow = gaps(&before);
    assert!(slow.len() >= 3, "{slow:?}");
    assert!(
        slow.iter().all(|gap| *gap >= 2_900),
        "at 1 per 3 s, requests came closer than 3 s apart (ms): {slow:?}"
    );
    assert_at_five_a_second_soon_after(&after, changed);
}

/// Asserts that the requests `after` a change to 5 a second at `changed` (ms since the
/// epoch) came at that rate from 2 s after it, and never faster.
fn assert_at_five_a_second_soon_after(after: &[LoggedRequest], changed: i64) {
    // From 2 s after the change, requests come at the new rate: 5 a second, 200 ms apart.
    let from = changed + 2_000;
    let window: Vec<&LoggedRequest> = after
        .iter()
        .filter(|r| at(r) >= from && at(r) < from + 2_000)
        .collect();
    let fast = gaps(after);
    // The first request that came sooner after its predecessor than the old rate allows.
    let effect = after
        .windows(2)
        .find(|pair| at(&pair[1]) - at(&pair[0]) < 1_000)
        .map(|pair| at(&pair[1]) - changed)
        .expect("no request at the new rate");
    eprintln!("the new rate showed {effect} ms after the change; gaps (ms): {fast:?}");
    assert!(
        effect <= 2_000,
        "the new rate showed only {effect} ms after the change"
    );
    // 10 at 5/s; the old rate allows 1. Each turn also writes its page, which on a loaded
    // machine can take longer than 200 ms, so fewer than 10 is no fault of the limiter.
    assert!(
        window.len() >= 5,
        "only {} requests in the 2 s starting 2 s after the change to 5/s; gaps after the \
         change (ms): {fast:?}",
        window.len()
    );
    assert!(
        fast.iter().all(|gap| *gap >= 150),
        "faster than 5 per second after the change (ms): {fast:?}"
    );
}

/// Why polling of `acme` is paused, if it is.
async fn paused_reason(client: &tokio_postgres::Client) -> Option<String> {
    client
        .query_one(
            "SELECT paused_reason FROM sfpg.orgs WHERE name = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_set_with_the_cli_pauses_and_resumes_polling_at_once() {
    let salesforce = emulator(20_000, 32).await;
    let (_, allocation) = salesforce.api_usage();
    // Others have used 30% of the org's daily allocation today.
    salesforce.consume_api_requests(allocation * 3 / 10);
    let db = TestDatabase::create().await;
    add_org(&db, "acme", &salesforce, "5", "1s").await;
    let client = db.connect().await;
    // No probe during the test: only the budget change may resume polling.
    let sync = start_sync(&db, &["--budget-probe-every", "1h"]);
    eventually("a few requests", Duration::from_secs(30), async || {
        counted(&salesforce).len() >= 5
    })
    .await;

    run(
        &db,
        &["org", "set-budget", "acme", "--max-daily-share", "20%"],
    )
    .await;
    let lowered = now();
    let reason = eventually_some("polling paused", Duration::from_secs(5), async || {
        paused_reason(&client).await
    })
    .await;
    let paused_after = now() - lowered;
    assert!(
        paused_after <= 2_000,
        "paused {paused_after} ms after the budget change"
    );
    assert!(reason.contains("daily API budget"), "{reason}");
    assert!(reason.contains("20%"), "{reason}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: Vec<i64> = counted(&salesforce)
        .iter()
        .map(|r| at(r) - lowered)
        .filter(|t| *t > 1_000)
        .collect();
    assert!(
        late.is_empty(),
        "requests went on after the budget fell below the usage (ms after): {late:?}"
    );

    run(
        &db,
        &["org", "set-budget", "acme", "--max-daily-share", "90%"],
    )
    .await;
    let raised = now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed: Vec<i64> = counted(&salesforce)
        .iter()
        .map(|r| at(r) - raised)
        .filter(|t| *t > 0 && *t < 2_000)
        .collect();
    assert!(
        resumed.len() >= 4,
        "polling did not resume within 2 s of raising the budget (ms after): {resumed:?}"
    );
    assert_eq!(paused_reason(&client).await, None);
    stop(sync).await;
}
