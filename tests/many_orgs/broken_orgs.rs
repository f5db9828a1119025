//! One sync process serving several orgs while some of them are broken: a refused
//! password, a spent allocation, a Salesforce that is gone. The healthy orgs go live at
//! their own rate's pace, and `sfpg status` says what is wrong with each broken one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sfpg_emulator::http::{LoggedRequest, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::eventually_some;

use super::{
    add_org, all_live, assert_mirror_equals_org, at, counted, emulator, gaps, logins, now, run,
    start_sync, stop,
};

/// The longest pause between the sync's requests to an org, from its first after `started`
/// until `until`. The requests `sfpg org add` made before the sync started are left out:
/// the pause after them is the sync's own start-up (migrations, logging in), which the
/// broken orgs cannot hold up and which a loaded machine stretches.
fn longest_gap_between(requests: &[LoggedRequest], started: i64, until: i64) -> i64 {
    let before: Vec<LoggedRequest> = requests
        .iter()
        .filter(|r| at(r) >= started && at(r) <= until)
        .cloned()
        .collect();
    gaps(&before).into_iter().max().unwrap_or(0)
}

/// The orgs of one mirror database: two healthy, three broken.
struct Orgs {
    alpha: RunningEmulator,
    beta: RunningEmulator,
    /// Its password was changed in Salesforce after it was registered.
    gamma: RunningEmulator,
    /// Its daily allocation is spent by other integrations.
    delta: RunningEmulator,
}

impl Orgs {
    /// Registers them all (and epsilon, whose Salesforce goes away once registered).
    async fn register(db: &TestDatabase) -> Orgs {
        let orgs = Orgs {
            alpha: emulator(6_000, 41).await,
            beta: emulator(6_000, 42).await,
            gamma: emulator(1_000, 43).await,
            delta: emulator(1_000, 44).await,
        };
        add_org(db, "alpha", &orgs.alpha, "5", "1s").await;
        add_org(db, "beta", &orgs.beta, "5", "1s").await;
        let mut gamma = sfpg_testkit::binary::add_with_password("gamma", "an-old-password");
        let url = orgs.gamma.instance_url();
        gamma.extend([
            "--instance-url",
            url,
            "--objects",
            "Account,Contact",
            "--no-verify",
        ]);
        run(db, &gamma).await;
        add_org(db, "delta", &orgs.delta, "5", "1s").await;
        let (_, allocation) = orgs.delta.api_usage();
        orgs.delta.consume_api_requests(allocation);
        let epsilon = emulator(1_000, 45).await;
        add_org(db, "epsilon", &epsilon, "5", "1s").await;
        epsilon.shutdown().await;
        orgs
    }
}

/// When (ms since the epoch) each of alpha and beta was first seen live.
async fn wait_healthy_live(client: &tokio_postgres::Client) -> HashMap<&'static str, i64> {
    let mut live_at: HashMap<&str, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while live_at.len() < 2 {
        for org in ["alpha", "beta"] {
            if !live_at.contains_key(org) && all_live(client, org).await {
                live_at.insert(org, now());
            }
        }
        assert!(
            Instant::now() < deadline,
            "alpha and beta not live within 60 s: {live_at:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live_at
}

/// Asserts that `org` went live at its own rate's pace (5/s) from `started` to `until`,
/// never held up, and that its mirror equals it.
async fn assert_live_at_its_pace(
    client: &tokio_postgres::Client,
    (org, emulator): (&str, &RunningEmulator),
    started: i64,
    until: i64,
) {
    let requests = counted(emulator);
    let longest = longest_gap_between(&requests, started, until);
    let used = requests.iter().filter(|r| at(r) <= until).count();
    let took = until - started;
    eprintln!("{org}: live after {took} ms, {used} requests, longest gap {longest} ms");
    // 200 ms apart at 5/s; a pause of 1.5 s would mean something held the org up.
    assert!(
        longest < 1_500,
        "{org} waited {longest} ms between two requests"
    );
    // What the org's own rate allows, plus start-up (migrations, logging in).
    let allowed = i64::try_from(used).unwrap() * 200 + 5_000;
    assert!(
        took <= allowed,
        "{org} went live after {took} ms for {used} requests at 5/s"
    );
    assert_mirror_equals_org(emulator, client, org).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_orgs_do_not_hold_up_the_healthy_ones() {
    let db = TestDatabase::create().await;
    let orgs = Orgs::register(&db).await;
    let client = db.connect().await;

    let started = now();
    // The broken orgs try again every second, as hard as they can.
    let sync = start_sync(&db, &["--retry-after", "1s", "--budget-probe-every", "1s"]);
    let live_at = wait_healthy_live(&client).await;
    for healthy in [("alpha", &orgs.alpha), ("beta", &orgs.beta)] {
        assert_live_at_its_pace(&client, healthy, started, live_at[healthy.0]).await;
    }
    // The broken orgs kept trying meanwhile.
    let gamma_logins = logins(&orgs.gamma);
    assert!(gamma_logins >= 2, "gamma logged in {gamma_logins} times");
    assert!(
        orgs.delta
            .requests(0)
            .iter()
            .any(|r| r.status == Some(403) && !r.injected),
        "delta was never refused"
    );
    assert_status_tells_each_orgs_trouble(&db).await;
    stop(sync).await;
}

/// Asserts what `sfpg status` says of each org: gamma's failed login, delta's pause, and
/// epsilon's unreachable Salesforce, and nothing wrong with alpha and beta; and never a
/// password.
async fn assert_status_tells_each_orgs_trouble(db: &TestDatabase) {
    let status = run(db, &["status"]).await;
    let section = |org: &str| -> String {
        status
            .split("\n\n")
            .find(|block| block.starts_with(&format!("org {org} ")))
            .unwrap_or_else(|| panic!("no {org} in:\n{status}"))
            .to_owned()
    };
    let gamma_status = section("gamma");
    assert!(
        gamma_status.contains("last org error:") && gamma_status.contains("authentication failure"),
        "{gamma_status}"
    );
    let delta_status = section("delta");
    assert!(
        delta_status.contains("polling paused:") && delta_status.contains("REQUEST_LIMIT_EXCEEDED"),
        "{delta_status}"
    );
    // Each failed attempt (with the client's own retries and their growing pauses) takes
    // a while: wait for the first to be recorded against an object. The stream's line may
    // name the refused connection sooner (it reads the CDC selection first), so waiting for
    // the words anywhere in the text is not enough.
    let errors = eventually_some(
        "epsilon's error recorded against an object",
        Duration::from_secs(30),
        async || {
            let json = run(db, &["status", "--json", "epsilon"]).await;
            let json: serde_json::Value = serde_json::from_str(&json).unwrap();
            let errors: Vec<String> = json[0]["objects"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|object| object["last_error"].as_str())
                .map(str::to_owned)
                .collect();
            errors
                .iter()
                .any(|e| e.contains("Connection refused"))
                .then_some(errors)
        },
    )
    .await;
    let epsilon_status = run(db, &["status", "epsilon"]).await;
    assert!(
        epsilon_status.contains("Connection refused"),
        "{errors:?}\n{epsilon_status}"
    );
    for org in ["alpha", "beta"] {
        let healthy = section(org);
        assert!(
            !healthy.contains("last org error") && !healthy.contains("paused"),
            "{healthy}"
        );
    }
    assert!(!status.contains("an-old-password"), "{status}");
}
