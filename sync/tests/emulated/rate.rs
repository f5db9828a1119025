//! The rate limit, seen from Salesforce's side (the emulator's request log): never
//! exceeded, objects served round-robin, and a new rate picked up live.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sfpg_emulator::http::LoggedRequest;
use sfpg_sync::{StoredCredentials, Supervisor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, generated, master_key, quiet_settings, soql_of};

/// The counted requests (API calls against the daily allocation), oldest first.
fn counted(harness: &Harness) -> Vec<LoggedRequest> {
    harness
        .emulator
        .requests(0)
        .into_iter()
        .filter(|r| r.counted)
        .collect()
}

/// The object a request was about.
fn object_of(request: &LoggedRequest) -> String {
    if let Some(soql) = soql_of(request) {
        let from = soql.split(" FROM ").nth(1).unwrap_or_default();
        return from
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
    }
    let mut segments = request
        .path
        .split('/')
        .skip_while(|s| *s != "sobjects")
        .skip(1);
    segments.next().unwrap_or_default().to_owned()
}

/// The shortest gap between consecutive requests.
fn shortest_gap(requests: &[LoggedRequest]) -> chrono::Duration {
    requests
        .windows(2)
        .map(|pair| pair[1].time - pair[0].time)
        .min()
        .unwrap_or(chrono::Duration::MAX)
}

/// Runs every enabled org as `sfpg sync` does, for `duration`.
async fn run_supervisor(harness: &Harness, duration: Duration) {
    let supervisor = Supervisor::new(
        harness.db.config(),
        Arc::new(StoredCredentials::new(master_key())),
        quiet_settings(),
    );
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        stop.cancel();
    });
    supervisor.run(shutdown).await.unwrap();
}

#[tokio::test]
async fn the_rate_is_never_exceeded_and_objects_take_turns() {
    let objects = ["Account", "Contact", "Lead"];
    let harness = Harness::start(generated(3000), &objects).await;
    harness
        .set_org("rate_requests = 1, rate_period_ms = 100")
        .await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.cancel();
    });
    let (_reload, mut reloads) = mpsc::unbounded_channel();
    sync.run(&shutdown, &mut reloads).await.unwrap();

    let requests = counted(&harness);
    assert!(
        requests.len() >= 20,
        "only {} requests in 3 s",
        requests.len()
    );
    assert!(
        requests.len() <= 31,
        "{} requests in 3 s at 10/s",
        requests.len()
    );
    // Spacing as seen by the server, less a little for the network.
    assert!(
        shortest_gap(&requests) >= chrono::Duration::milliseconds(90),
        "{:?}",
        shortest_gap(&requests)
    );
    let served: Vec<String> = requests.iter().map(object_of).collect();
    for window in served.windows(3) {
        let mut distinct = window.to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "not round-robin: {served:?}");
    }
}

#[tokio::test]
async fn a_new_rate_is_picked_up_live() {
    let harness = Harness::start(generated(3000), &["Account", "Contact"]).await;
    harness
        .set_org("rate_requests = 2, rate_period_ms = 1000")
        .await;
    let started = Utc::now();
    let change = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        // What `sfpg org set-rate-limit` does: the row changes, the trigger notifies.
        harness
            .set_org("rate_requests = 20, rate_period_ms = 1000")
            .await;
    };
    tokio::join!(run_supervisor(&harness, Duration::from_secs(5)), change);

    let requests = counted(&harness);
    let changed = started + chrono::Duration::seconds(3);
    let (before, after): (Vec<LoggedRequest>, Vec<LoggedRequest>) =
        requests.into_iter().partition(|r| r.time < changed);
    assert!(before.len() <= 7, "{} requests in 3 s at 2/s", before.len());
    assert!(shortest_gap(&before) >= chrono::Duration::milliseconds(490));
    // Requests closer together than the old rate allows: the new one is in force.
    let gap = shortest_gap(&after);
    assert!(
        gap < chrono::Duration::milliseconds(250),
        "no request came faster than the old rate after the change: {gap:?}"
    );
    assert!(gap >= chrono::Duration::milliseconds(40), "{gap:?}");
}

#[tokio::test]
async fn at_the_default_rate_sixty_seconds_hold_at_most_twenty_one_requests() {
    let harness = Harness::start(generated(3000), &["Account", "Contact"]).await;
    harness
        .set_org("rate_requests = 1, rate_period_ms = 3000")
        .await;
    run_supervisor(&harness, Duration::from_secs(60)).await;

    let requests = counted(&harness);
    assert!(
        requests.len() <= 21,
        "{} requests in 60 s at 1 per 3 s",
        requests.len()
    );
    assert!(
        requests.len() >= 19,
        "only {} requests in 60 s",
        requests.len()
    );
    assert!(
        shortest_gap(&requests) >= chrono::Duration::milliseconds(2990),
        "{:?}",
        shortest_gap(&requests)
    );
    let served: Vec<String> = requests.iter().map(object_of).collect();
    assert!(
        served.windows(2).all(|pair| pair[0] != pair[1]),
        "not round-robin: {served:?}"
    );
}
