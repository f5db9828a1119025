//! Failover: 3 workers share the orgs; once every org is live, one is killed with SIGKILL.
//! Each org it held must be polled again by another worker within 45 s, and no org may
//! ever be synced by two workers at once. The second is read from the emulator: each org's
//! request log names the session (a worker's login to that org: workers never share one)
//! of every request, so two workers syncing one org at once would show as two sessions
//! whose requests interleave; and from the leases, whose epoch grows with each take-over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sfpg_emulator::http::{LoggedRequest, RunningEmulator};
use sfpg_testkit::TestDatabase;

use super::{Worker, emulator, held, org_name, orgs, register, stop, until_all_live};

/// The orgs' lease epochs, when the leases table exists.
async fn epochs(client: &tokio_postgres::Client) -> Option<HashMap<String, i64>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('sfpg.leases') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return None;
    }
    let rows = client
        .query("SELECT org_name, epoch FROM sfpg.leases", &[])
        .await
        .unwrap();
    Some(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The first, median and last of `values`, rounded to 0.1.
fn spread(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        values
            .get(((values.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |v| (v * 10.0).round() / 10.0)
    };
    [at(0.0), at(0.5), at(1.0)]
}

/// Each session's first and last request in `log`, by session.
fn session_spans(log: &[LoggedRequest]) -> BTreeMap<u64, (DateTime<Utc>, DateTime<Utc>)> {
    let mut spans: BTreeMap<u64, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for request in log {
        if let Some(session) = request.session {
            let span = spans.entry(session).or_insert((request.time, request.time));
            span.0 = span.0.min(request.time);
            span.1 = span.1.max(request.time);
        }
    }
    spans
}

/// The pairs of sessions whose requests interleave in `log`: two clients at once.
fn overlaps(log: &[LoggedRequest]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, DateTime<Utc>, DateTime<Utc>)> = session_spans(log)
        .into_iter()
        .map(|(s, (first, last))| (s, first, last))
        .collect();
    spans.sort_by_key(|(_, first, _)| *first);
    spans
        .windows(2)
        .filter(|pair| pair[1].1 < pair[0].2)
        .map(|pair| (pair[0].0, pair[1].0))
        .collect()
}

/// When org `number` was first answered a counted API request after `killed_at` by a
/// session it had not seen before then.
fn taken_over_at(
    emulator: &RunningEmulator,
    number: usize,
    killed_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let log = emulator.org_requests(number, 0).unwrap();
    let before: HashSet<u64> = log
        .iter()
        .filter(|r| r.time <= killed_at)
        .filter_map(|r| r.session)
        .collect();
    log.iter()
        .filter(|r| r.time > killed_at && r.counted)
        .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
        .find(|r| r.session.is_some_and(|s| !before.contains(&s)))
        .map(|r| r.time)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn failover() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    register(&db, &emulator).await;
    let client = db.connect().await;
    let started = Instant::now();
    let mut workers: Vec<Worker> = (1..=3).map(|i| Worker::start(&db, i)).collect();
    let took = until_all_live(&client, started, Duration::from_secs(30 * 60)).await;
    println!(
        "3 workers: every org live after {:.1} s",
        took.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(30)).await;

    let held_before = held(&client, &workers).await;
    let epochs_before = epochs(&client).await;
    let victim = workers.remove(1);
    let victim_orgs: Vec<String> = held_before.get(&victim.index).cloned().unwrap_or_default();
    println!(
        "killing worker-{} (pid {}), holding {} orgs",
        victim.index,
        victim.process.id(),
        victim_orgs.len()
    );
    let killed_at = Utc::now();
    let mut victim = victim;
    victim.process.kill();

    let numbers: Vec<usize> = (1..=orgs())
        .filter(|n| victim_orgs.contains(&org_name(*n)))
        .collect();
    let mut moved: HashMap<usize, f64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while moved.len() < numbers.len() && Instant::now() < deadline {
        for &n in &numbers {
            if moved.contains_key(&n) {
                continue;
            }
            if let Some(at) = taken_over_at(&emulator, n, killed_at) {
                moved.insert(n, (at - killed_at).num_milliseconds() as f64 / 1000.0);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut delays: Vec<f64> = moved.values().copied().collect();
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| {
        delays
            .get(((delays.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "orgs of the killed worker polled again by another: {} of {}; after {:.1} s (first), {:.1} s (median), {:.1} s (last) (target: all within 45 s)",
        moved.len(),
        numbers.len(),
        at(0.0),
        at(0.5),
        at(1.0)
    );

    // Where a take-over's seconds go: when the leases were taken, when the new owners
    // logged in, and the requests of the first moved org after the kill.
    let taken: Vec<f64> = client
        .query(
            "SELECT extract(epoch FROM taken_at)::float8 FROM sfpg.leases WHERE org_name = ANY($1)",
            &[&victim_orgs],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, f64>(0) - killed_at.timestamp_millis() as f64 / 1000.0)
        .collect();
    let logins: Vec<f64> = numbers
        .iter()
        .filter_map(|&n| {
            emulator
                .org_requests(n, 0)
                .unwrap()
                .iter()
                .find(|r| r.time > killed_at && r.path.ends_with("/oauth2/token"))
                .map(|r| (r.time - killed_at).num_milliseconds() as f64 / 1000.0)
        })
        .collect();
    println!(
        "after the kill: leases taken (first, median, last) {:?} s; new owners' logins {:?} s",
        spread(taken),
        spread(logins)
    );
    // The requests of the first moved org after the kill.
    if let Some(&n) = numbers.first() {
        println!(
            "requests of {} after the kill (s after it, session, status):",
            org_name(n)
        );
        for r in emulator
            .org_requests(n, 0)
            .unwrap()
            .iter()
            .filter(|r| r.time > killed_at)
            .take(12)
        {
            println!(
                "  {:>6.1} s  session {:?}  {} {} {:?}{}",
                (r.time - killed_at).num_milliseconds() as f64 / 1000.0,
                r.session,
                r.method,
                r.path,
                r.status,
                if r.counted { " counted" } else { "" }
            );
        }
    }

    let held_after = held(&client, &workers).await;
    let survivors: HashSet<&String> = held_after.values().flatten().collect();
    let rehomed = victim_orgs.iter().filter(|o| survivors.contains(o)).count();
    println!(
        "held by a surviving worker now: {rehomed} of {}; shares {:?}",
        victim_orgs.len(),
        held_after
            .iter()
            .map(|(w, o)| (format!("worker-{w}"), o.len()))
            .collect::<BTreeMap<_, _>>()
    );

    // No org synced by two workers at once, over the whole run.
    let mut interleaved = Vec::new();
    let mut sessions = 0;
    for n in 1..=orgs() {
        let log = emulator.org_requests(n, 0).unwrap();
        sessions += session_spans(&log).len();
        let found = overlaps(&log);
        if !found.is_empty() {
            interleaved.push((org_name(n), found));
        }
    }
    println!(
        "sessions: {sessions} over {} orgs; orgs whose sessions interleave (two clients at once): {} {:?}",
        orgs(),
        interleaved.len(),
        interleaved.iter().take(5).collect::<Vec<_>>()
    );
    if let (Some(before), Some(after)) = (epochs_before, epochs(&client).await) {
        let grew = victim_orgs
            .iter()
            .filter(|o| after.get(*o) > before.get(*o))
            .count();
        let others_moved = before
            .iter()
            .filter(|(o, e)| !victim_orgs.contains(o) && after.get(*o) != Some(e))
            .count();
        println!(
            "epochs: grew for {grew} of the {} moved orgs; changed for {others_moved} others",
            victim_orgs.len()
        );
    } else {
        println!("epochs: no sfpg.leases table (advisory locks)");
    }
    stop(workers).await;
    assert!(
        interleaved.is_empty(),
        "orgs synced by two workers at once: {interleaved:?}"
    );
    assert_eq!(
        moved.len(),
        numbers.len(),
        "orgs of the killed worker never polled again"
    );
}
