//! The lag benchmark of Change Data Capture (figures in docs/benchmarks.md): another user
//! updates random Accounts at 10, 100 and 1,000 changes a second for a while, and each
//! change's time from the emulator's commit to the mirror's write is measured by a trigger
//! on the mirror table, streamed over CometD (runs `stream<rate>`), then at 100 and 1,000 a
//! second over the Pub/Sub API (`set-cdc on --transport pubsub`, runs `pubsub<rate>`) in
//! the same run; then the same load with the stream off (`set-cdc off`), polled at the
//! default rate (1 request every 3 s), as the baseline. API requests per hour of each
//! come from the emulator's request log. Ignored by default: run it with
//! `cargo test --release --test sync_cdc_lag -- --ignored --nocapture`
//! (`SFPG_LAG_SECONDS` changes the 60 s of each run; `SFPG_LAG_RUNS=stream1000,pubsub1000`
//! makes only the runs named).

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::json;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use support::*;

/// Records a mirror write of a marked phone, with the time, inside the writing transaction.
const TRIGGER: &str = "
    CREATE TABLE public.lag_seen (phone text, at timestamptz);
    CREATE FUNCTION public.lag_seen() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.phone LIKE 'lag-%' THEN
            INSERT INTO public.lag_seen VALUES (NEW.phone, clock_timestamp());
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER lag_seen AFTER INSERT OR UPDATE ON acme.account
        FOR EACH ROW EXECUTE FUNCTION public.lag_seen();";

struct Run {
    label: String,
    p50: f64,
    p99: f64,
    max: f64,
    /// p50 of the first and of the last tenth of the changes: a growing backlog shows.
    first_p50: f64,
    last_p50: f64,
    seen: usize,
    sent: usize,
    /// Requests that count against the daily API allocation, and every HTTP request
    /// (CometD connects included, which do not count), per hour.
    requests_per_hour: f64,
    http_per_hour: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Changes random Accounts at `rate` a second for `seconds`, then waits for the mirror.
async fn run(
    emulator: &Arc<RunningEmulator>,
    client: &tokio_postgres::Client,
    label: &str,
    rate: u64,
    seconds: u64,
    settle: Duration,
) -> Run {
    let accounts = ids(emulator, "Account");
    let log_before = emulator.requests(0).last().map_or(0, |r| r.seq);
    let started = Instant::now();
    let started_at = Utc::now();
    let mut sent: HashMap<String, SystemTime> = HashMap::new();
    let total = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total {
        tick.tick().await;
        let phone = format!("lag-{label}-{n}");
        let id = &accounts[(n as usize * 7919) % accounts.len()];
        emulator
            .update_as("Account", id, &fields(json!({"Phone": phone})), None)
            .unwrap();
        sent.insert(phone, SystemTime::now());
    }
    let elapsed = started.elapsed();
    let ended_at = Utc::now();
    let seen = wait_mirrored(client, label, total, settle).await;
    let log = emulator.requests(log_before);
    let during: Vec<_> = log
        .iter()
        .filter(|r| r.time >= started_at && r.time <= ended_at)
        .collect();
    let per_hour = |n: usize| n as f64 * 3600.0 / elapsed.as_secs_f64();
    let mut run = lags(label, &sent, &seen);
    run.requests_per_hour = per_hour(during.iter().filter(|r| r.counted).count());
    run.http_per_hour = per_hour(during.len());
    run
}

/// The mirror's writes of the run's phones, once the last one is seen (each change whose
/// record was not changed again before it was mirrored) or `settle` has passed.
async fn wait_mirrored(
    client: &tokio_postgres::Client,
    label: &str,
    total: u64,
    settle: Duration,
) -> Vec<(String, DateTime<Utc>)> {
    let deadline = Instant::now() + settle;
    loop {
        let seen: Vec<(String, DateTime<Utc>)> = client
            .query(
                "SELECT phone, at FROM public.lag_seen WHERE phone LIKE $1",
                &[&format!("lag-{label}-%")],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let last = format!("lag-{label}-{}", total - 1);
        if seen.iter().any(|(p, _)| *p == last) || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lags of the changes `sent` that were `seen` in the mirror (requests left at 0).
fn lags(label: &str, sent: &HashMap<String, SystemTime>, seen: &[(String, DateTime<Utc>)]) -> Run {
    let mut by_order: Vec<(u64, f64)> = seen
        .iter()
        .filter_map(|(phone, at)| {
            let sent_at: DateTime<Utc> = (*sent.get(phone)?).into();
            let n: u64 = phone.rsplit('-').next()?.parse().ok()?;
            Some((n, (*at - sent_at).num_microseconds()? as f64 / 1000.0))
        })
        .collect();
    by_order.sort_by_key(|a| a.0);
    let tenth = (by_order.len() / 10).max(1);
    let sorted_of = |part: &[(u64, f64)]| {
        let mut lags: Vec<f64> = part.iter().map(|(_, l)| *l).collect();
        lags.sort_by(f64::total_cmp);
        lags
    };
    let all = sorted_of(&by_order);
    let first = sorted_of(&by_order[..tenth.min(by_order.len())]);
    let last = sorted_of(&by_order[by_order.len().saturating_sub(tenth)..]);
    Run {
        label: label.to_owned(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        max: all.last().copied().unwrap_or(f64::NAN),
        first_p50: percentile(&first, 0.5),
        last_p50: percentile(&last, 0.5),
        seen: all.len(),
        sent: sent.len(),
        requests_per_hour: 0.0,
        http_per_hour: 0.0,
    }
}

/// Whether `SFPG_LAG_RUNS` (a comma-separated list of run labels) asks for `label`; every
/// run when it is unset.
fn wanted(label: &str) -> bool {
    std::env::var("SFPG_LAG_RUNS").map_or(true, |runs| runs.split(',').any(|r| r.trim() == label))
}

/// An emulator with 4,000 generated records, and a database with org `acme` mirroring its
/// Accounts at the default rate: 1 request every 3 s, as `org add` sets it.
async fn setup() -> (Arc<RunningEmulator>, TestDatabase) {
    let emulator = Arc::new(
        sfpg_emulator::http::start(EmulatorConfig {
            org: OrgSource::Generated {
                records: 4000,
                seed: 7,
            },
            ..EmulatorConfig::default()
        })
        .await
        .unwrap(),
    );
    let db = TestDatabase::create().await;
    SFPG.run(
        &db,
        &[
            "org",
            "add",
            "acme",
            "--instance-url",
            emulator.instance_url(),
            "--client-id",
            sfpg_emulator::http::DEFAULT_CLIENT_ID,
            "--client-secret",
            sfpg_emulator::http::DEFAULT_CLIENT_SECRET,
            "--objects",
            "Account",
            "--pubsub-endpoint",
            emulator.pubsub_endpoint(),
        ],
    )
    .await;
    let cometd = ["org", "set-cdc", "acme", "on", "--transport", "cometd"];
    SFPG.run(&db, &cometd).await;
    (emulator, db)
}

fn print_table(runs: &[Run]) {
    println!(
        "| run | changes mirrored / made | p50 | p99 | max | p50 first → last tenth | API requests per hour | all HTTP requests per hour |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in runs {
        println!(
            "| {} | {} / {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} → {:.0} ms | {:.0} | {:.0} |",
            r.label,
            r.seen,
            r.sent,
            r.p50,
            r.p99,
            r.max,
            r.first_p50,
            r.last_p50,
            r.requests_per_hour,
            r.http_per_hour
        );
    }
}

/// The stream switched to the Pub/Sub API (it resumes after its checkpoint), and the
/// `pubsub<rate>` runs asked for at 100 and 1,000 changes a second.
async fn over_pubsub(
    emulator: &Arc<RunningEmulator>,
    db: &TestDatabase,
    client: &tokio_postgres::Client,
    seconds: u64,
) -> Vec<Run> {
    let labels: Vec<(u64, String)> = [100, 1000]
        .into_iter()
        .map(|rate| (rate, format!("pubsub{rate}")))
        .filter(|(_, label)| wanted(label))
        .collect();
    if labels.is_empty() {
        return Vec::new();
    }
    SFPG.run(
        db,
        &["org", "set-cdc", "acme", "on", "--transport", "pubsub"],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while transport(client).await.0.as_deref() != Some("pubsub") {
        assert!(Instant::now() < deadline, "{:?}", transport(client).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_streaming(client, 1, Duration::from_secs(60)).await;
    let mut runs = Vec::new();
    for (rate, label) in labels {
        let settle = Duration::from_secs(30);
        runs.push(run(emulator, client, &label, rate, seconds, settle).await);
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it with --ignored --nocapture, in release"]
async fn lag_from_the_emulator_commit_to_the_mirror_commit() {
    let seconds: u64 = std::env::var("SFPG_LAG_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (emulator, db) = setup().await;
    let client = db.connect().await;
    let sync = start_sync(&db, &[]);
    wait_streaming(&client, 1, Duration::from_secs(300)).await;
    client.batch_execute(TRIGGER).await.unwrap();
    let mut runs = Vec::new();
    for rate in [10, 100, 1000] {
        let label = format!("stream{rate}");
        if wanted(&label) {
            let settle = Duration::from_secs(30);
            runs.push(run(&emulator, &client, &label, rate, seconds, settle).await);
        }
    }
    runs.extend(over_pubsub(&emulator, &db, &client, seconds).await);
    SFPG.run(&db, &["org", "set-cdc", "acme", "off"]).await;
    wait_stream(&client, Duration::from_secs(10), "stream down", |s| {
        s.0 == "down"
    })
    .await;
    for rate in [10, 100] {
        let label = format!("poll{rate}");
        if wanted(&label) {
            let settle = Duration::from_secs(120);
            runs.push(run(&emulator, &client, &label, rate, seconds, settle).await);
        }
    }
    sync.stop_cleanly(Duration::from_secs(60)).await;
    print_table(&runs);
}
