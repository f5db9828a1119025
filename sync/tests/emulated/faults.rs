//! Salesforce misbehaving mid-run: server errors, timeouts and dropped connections are
//! retried and the mirror converges; an expired session is renewed without a failed turn;
//! an exhausted daily allocation pauses polling with the reason in the control schema, and
//! polling resumes once the allocation is reset.

use std::time::Duration;

use serde_json::json;
use sfpg_emulator::http::{DropRule, FailureRule, Latency, RequestMatcher};
use sfpg_sync::{Reaction, SyncSettings, TurnReport};

use crate::support::{
    Harness, all_live, drive_for, drive_until, generated, quiet_settings, run_turns, turn_until,
};

fn queries() -> RequestMatcher {
    RequestMatcher {
        method: Some("GET".into()),
        path: Some("/services/data/*/query*".into()),
    }
}

#[tokio::test]
async fn server_errors_timeouts_and_dropped_connections_mid_run_converge() {
    let harness = Harness::start(generated(3000), &["Account", "Contact"]).await;
    let client = harness
        .salesforce_with_timeout(Duration::from_millis(400))
        .await;
    let mut sync = harness.org_sync_with(client, quiet_settings()).await;
    run_turns(&mut sync, 5).await;

    // More 503s than one request's retries can absorb: some turns fail, later ones go on.
    harness.emulator.fail_next(
        FailureRule::new(503, "SERVER_UNAVAILABLE")
            .times(6)
            .matching(Some("GET"), "/services/data/*/query*"),
    );
    harness.emulator.drop_next(DropRule {
        matcher: queries(),
        count: 2,
        after_ms: None,
    });
    let reports = run_turns(&mut sync, 6).await;
    assert!(
        reports.iter().any(|r| matches!(
            r,
            TurnReport::Failed {
                reaction: Reaction::Retry,
                ..
            }
        )),
        "no turn failed: {reports:#?}"
    );

    // Every query slower than the client waits. A backfill page read ahead before may
    // still carry one turn; the turns after it fail.
    harness.emulator.set_latency(Some(Latency {
        fixed_ms: 700,
        jitter_ms: 0,
        matcher: queries(),
    }));
    let reports = run_turns(&mut sync, 3).await;
    assert!(
        reports[1..]
            .iter()
            .all(|r| matches!(r, TurnReport::Failed { .. })),
        "{reports:#?}"
    );
    harness.emulator.set_latency(None);

    turn_until(&mut sync, 200, all_live).await;
    let id = harness.create("Account", json!({"Name": "After the storm"}));
    run_turns(&mut sync, 4).await;
    assert!(harness.mirror_value("account", &id, "sfid").await.is_some());
    harness.assert_mirror_equals_org("Account").await;
    harness.assert_mirror_equals_org("Contact").await;
    let errors = sync
        .objects()
        .iter()
        .filter_map(|o| o.state.last_error.as_ref())
        .count();
    assert_eq!(errors, 0, "an error outlived the recovery");
}

#[tokio::test]
async fn an_expired_session_is_renewed_and_the_sync_goes_on() {
    let harness = Harness::start(generated(3000), &["Account"]).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    run_turns(&mut sync, 3).await;
    assert!(harness.emulator.revoke_sessions(None, false) > 0);
    let seen = harness.emulator.requests(0).last().unwrap().seq;

    let mut reports = turn_until(&mut sync, 100, all_live).await;
    // The last backfill pages may have been read ahead before the revocation: a change
    // makes sure a request follows it.
    harness.create("Account", json!({"Name": "After the revocation"}));
    reports.extend(run_turns(&mut sync, 2).await);
    assert!(
        reports
            .iter()
            .all(|r| matches!(r, TurnReport::Worked { .. })),
        "{reports:#?}"
    );
    let after = harness.emulator.requests(seen);
    assert_eq!(
        after[0].status,
        Some(401),
        "the first request after the revocation"
    );
    assert_eq!(after[1].path, "/services/oauth2/token");
    harness.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn an_exhausted_daily_allocation_pauses_polling_until_it_is_reset() {
    let harness = Harness::start(generated(40), &["Account"]).await;
    harness.emulator.set_daily_api_limit(1000);
    let settings = SyncSettings {
        budget_probe_interval: Duration::from_millis(200),
        ..quiet_settings()
    };
    let mut sync = harness.org_sync(settings).await;
    turn_until(&mut sync, 20, all_live).await;

    // Other clients use the org's allocation up to 85%: above the 80% polling may use.
    let (used, _) = harness.emulator.api_usage();
    harness.emulator.consume_api_requests(850 - used);
    drive_until(&mut sync, Duration::from_secs(10), |s| {
        s.paused_reason().is_some()
    })
    .await;
    let client = harness.db.connect().await;
    let reason: String = client
        .query_one(
            "SELECT paused_reason FROM sfpg.orgs WHERE name = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("daily API budget"), "{reason}");
    assert!(reason.contains("of 1000 requests used"), "{reason}");
    let status = sfpg_control::status::load(&client).await.unwrap();
    assert_eq!(status[0].paused_reason.as_deref(), Some(reason.as_str()));

    // Paused: only the slow probes reach Salesforce.
    let seen = harness.emulator.requests(0).last().unwrap().seq;
    let id = harness.create("Account", json!({"Name": "Waiting"}));
    drive_for(&mut sync, Duration::from_secs(1)).await;
    let probes = harness.emulator.requests(seen);
    assert!(
        probes.len() <= 7,
        "polling went on while paused: {} requests",
        probes.len()
    );
    assert!(
        probes.iter().all(|r| r.path.ends_with("/sobjects")),
        "{probes:#?}"
    );
    assert_eq!(harness.mirror_value("account", &id, "sfid").await, None);

    // The hard limit: Salesforce refuses every call.
    harness.emulator.consume_api_requests(1000);
    drive_for(&mut sync, Duration::from_millis(500)).await;
    assert!(sync.paused_reason().is_some());

    // A new day: usage drops, the probe sees it, polling resumes.
    harness.emulator.reset_limits();
    drive_until(&mut sync, Duration::from_secs(10), |s| {
        s.paused_reason().is_none()
    })
    .await;
    run_turns(&mut sync, 3).await;
    assert!(harness.mirror_value("account", &id, "sfid").await.is_some());
    let reason: Option<String> = client
        .query_one(
            "SELECT paused_reason FROM sfpg.orgs WHERE name = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, None);
}
