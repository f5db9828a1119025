//! A worker holding many orgs that is asked to stop (SIGTERM) stops at once: every org's
//! task is cancelled together, whatever it waits on (its rate limiter's next slot, a
//! connection of the shared pool, a login), its leases are handed back in one statement,
//! and the process exits within seconds; a worker started next takes every org at its first
//! heartbeat, not when the leases would have expired.
//!
//! 300 orgs (`SFPG_CLEAN_STOP_ORGS` to try another number) on one multi-org emulator at the
//! default rate (1 request per 3 s) with 30 s leases: stopped a few seconds after taking
//! them, most orgs are starting, each waiting for its slot.

use std::time::{Duration, Instant};

use sfpg_control::orgs::{NewOrg, RateLimit};
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::wait_until;

use super::{OBJECTS, start_sync};

/// How many orgs the worker holds when it is stopped.
fn orgs() -> usize {
    std::env::var("SFPG_CLEAN_STOP_ORGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}
/// A long lease: the orgs must move because they are handed back, not because it expired.
const FLAGS: [&str; 6] = [
    "--lease-ttl",
    "30s",
    "--heartbeat",
    "1s",
    "--lease-moves",
    "200",
];
/// How long a clean stop may take, however many orgs (the target is well under 10 s for
/// 1,000).
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// Registers every org of `emulator` straight through sfpg-control (hundreds of `sfpg org add`
/// would measure process starts), at the default rate.
async fn register(db: &TestDatabase, emulator: &RunningEmulator) {
    let mut client = db.connect().await;
    sfpg_control::migrations::apply_control_schema(&mut client)
        .await
        .unwrap();
    let key = sfpg_testkit::world::master_key();
    for login in emulator.org_logins() {
        let name = format!("org{:04}", login.number);
        let new = NewOrg {
            pubsub_endpoint: Some(emulator.pubsub_endpoint().to_owned()),
            ..NewOrg::client_credentials(
                &name,
                &login.instance_url,
                &login.client_id,
                &login.client_secret,
                &OBJECTS,
            )
        };
        sfpg_control::orgs::insert(&mut client, &new, &key)
            .await
            .unwrap();
        sfpg_control::admin::set_rate_limit(&client, &name, RateLimit::default())
            .await
            .unwrap();
    }
}

/// How many leases `pid` holds, unexpired, and how many any worker holds.
async fn held_by(client: &tokio_postgres::Client, pid: u32) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE owner LIKE '%:' || $1::text), count(owner)
               FROM sfpg.leases WHERE expires_at > now()",
            &[&pid.to_string()],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_many_orgs_stops_at_once_and_hands_them_back() {
    let orgs = orgs();
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        orgs,
        org: OrgSource::Each { each: 20, seed: 7 },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    register(&db, &emulator).await;
    let client = db.connect().await;

    let mut first = start_sync(&db, &FLAGS);
    let pid = first.id();
    wait_until(
        "the first worker holds every org",
        Duration::from_secs(60),
        async || held_by(&client, pid).await,
        |(mine, _)| *mine == orgs as i64,
    )
    .await;
    // The orgs are starting now: logins, describes, each waiting for its rate's next slot.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let stopping = Instant::now();
    first.signal("TERM");
    let status = loop {
        if let Some(status) = first.try_wait() {
            break status;
        }
        if stopping.elapsed() > Duration::from_secs(60) {
            first.kill();
            panic!("a worker holding {orgs} orgs had not exited 60 s after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = stopping.elapsed();
    println!("a worker holding {orgs} orgs exited {took:?} after SIGTERM ({status})");
    assert!(status.success(), "sfpg sync exited with {status}");
    assert!(
        took < STOP_WITHIN,
        "a worker holding {orgs} orgs took {took:?} to exit after SIGTERM (at most {STOP_WITHIN:?})"
    );
    assert_eq!(
        held_by(&client, pid).await,
        (0, 0),
        "every lease is handed back when the worker exits"
    );

    // Handed back, so taken from the next worker's first heartbeat (200 per heartbeat of
    // 1 s), far within the 30 s the leases would have taken to expire.
    let second = start_sync(&db, &FLAGS);
    let starting = Instant::now();
    wait_until(
        "the next worker holds every org",
        Duration::from_secs(5 + 2 * orgs.div_ceil(200) as u64),
        async || held_by(&client, second.id()).await,
        |(mine, _)| *mine == orgs as i64,
    )
    .await;
    println!(
        "the next worker held every org {:?} after it started",
        starting.elapsed()
    );
}
