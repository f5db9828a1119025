//! `sfpg run` while its mirror database is stopped: it waits with backoff instead of
//! calling `connect()` in a loop, logs the outage once rather than once per attempt, and
//! once the database is back it reconnects and the sync carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use sfpg_emulator::http::{EmulatorConfig, OrgSource};
use sfpg_testkit::StoppableServer;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::{TestProcess, eventually};
use sfpg_testkit::world::{account_sfids, register_org_in, wait_all_live};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info");

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn mirror_city(url: &str, sfid: &str) -> Option<String> {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return None;
    };
    tokio::spawn(connection);
    client
        .query_opt(
            "SELECT billingcity FROM salesforce.account WHERE sfid = $1",
            &[&sfid],
        )
        .await
        .ok()
        .flatten()
        .and_then(|row| row.get(0))
}

/// Waits for the backfill of the database at `url`; returns the first Account's sfid.
async fn first_account_once_live(url: &str) -> String {
    let control = connect(url).await;
    wait_all_live(&control, Duration::from_secs(60)).await;
    account_sfids(&control, 1).await.remove(0)
}

/// Asserts that `run`, whose database is gone since its log line `outage_starts`, waits
/// quietly: little CPU over five seconds, and a few log lines, not one per attempt.
async fn assert_quiet_while_away(run: &TestProcess, outage_starts: usize) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = run.cpu_time();
    let measured_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu = run.cpu_time() - cpu_before;
    let wall = measured_from.elapsed();
    let outage_log = run.log_since(outage_starts);
    eprintln!(
        "while the database was stopped: {cpu:?} of CPU in {wall:?}, {} log lines",
        outage_log.len()
    );
    assert!(
        cpu < wall / 10,
        "sfpg run used {cpu:?} of CPU in {wall:?} while its database was stopped"
    );
    // A line per connection that closed and per state change, not one per attempt.
    assert!(
        outage_log.len() <= 12,
        "{} log lines while the database was stopped:\n{}",
        outage_log.len(),
        outage_log.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_waits_out_a_stopped_database_quietly_and_resumes_when_it_is_back() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 60,
            seed: 3,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let database = StoppableServer::start();
    let url = database.server().url("postgres");
    register_org_in(&mut connect(&url).await, &emulator, &["Account"]).await;
    let run = SFPG.start(&url, &["run", "--listen", "127.0.0.1:0", "--no-progress"]);
    let sfid = first_account_once_live(&url).await;

    // The database goes away, and stays away for a while.
    let outage_starts = run.log_len();
    database.stop();
    assert_quiet_while_away(&run, outage_starts).await;

    // Back again: a change made in Salesforce meanwhile reaches the mirror.
    emulator
        .update_as(
            "Account",
            &sfid,
            json!({"BillingCity": "Tromsø"}).as_object().unwrap(),
            None,
        )
        .unwrap();
    database.restart();
    eventually(
        "the change after the outage",
        Duration::from_secs(60),
        async || mirror_city(&url, &sfid).await.as_deref() == Some("Tromsø"),
    )
    .await;
    // The outage is two state changes of the listening connection: lost, then back. The
    // listener reconnects on its own backoff, which may end after the pool's first
    // connection carried the change above.
    let back = "reached the mirror database (listening for changes) again";
    eventually("the listener back", Duration::from_secs(60), async || {
        run.log_since(outage_starts)
            .iter()
            .any(|l| l.contains(back))
    })
    .await;
    let log = run.log_since(outage_starts);
    let lines_with = |text: &str| log.iter().filter(|line| line.contains(text)).count();
    assert_eq!(
        (
            lines_with("cannot reach the mirror database (listening for changes)"),
            lines_with(back)
        ),
        (1, 1),
        "{}",
        log.join("\n")
    );
}
