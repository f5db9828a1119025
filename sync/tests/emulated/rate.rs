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

/// The least gap two requests released a `slot_ms` apart may show at the emulator, which
/// logs a request when it begins serving it: the way from the limiter's release to there (a
/// task woken, a connection's turn) can take longer for one request than the next on a
/// loaded machine. Seen in full suite runs on 2 cores: 44 ms twice, 125 ms once at a slot of
/// 3 s, 11 ms at a slot of 100 ms. Up to 250 ms or half a slot is allowed: a limiter that let
/// a request out early would let it out a whole slot early, two requests of one slot
/// arriving together (a few ms apart), or seconds early at a slot of seconds.
fn least_gap(slot_ms: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(slot_ms - (slot_ms / 2).min(250))
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
        Arc::new(StoredCredentials::new(harness.db.config(), master_key())),
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
        shortest_gap(&requests) >= least_gap(100),
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
    // The case: from the default 1 request per 3 s to 5 a second. The change comes
    // while a request waits for its slot at the old rate, which it must not wait out.
    let harness = Harness::start(generated(3000), &["Account", "Contact"]).await;
    harness
        .set_org("rate_requests = 1, rate_period_ms = 3000")
        .await;
    let (changed_tx, changed_rx) = tokio::sync::oneshot::channel();
    let change = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while counted(&harness).len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "no second request");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The third request is due in about 2.7 s at the old rate.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let changed = Utc::now();
        // What `sfpg org set-rate-limit` does: the row changes, the trigger notifies.
        harness
            .set_org("rate_requests = 5, rate_period_ms = 1000")
            .await;
        let _ = changed_tx.send(changed);
    };
    tokio::join!(run_supervisor(&harness, Duration::from_secs(8)), change);
    let changed = changed_rx.await.unwrap();

    let requests = counted(&harness);
    let (before, after): (Vec<LoggedRequest>, Vec<LoggedRequest>) =
        requests.into_iter().partition(|r| r.time < changed);
    assert!(
        shortest_gap(&before) >= least_gap(3000),
        "{:?}",
        shortest_gap(&before)
    );
    let first_after = after.first().expect("no request after the change").time - changed;
    assert!(
        first_after < chrono::Duration::milliseconds(1500),
        "the first request after the change came {first_after:?} later, as at the old rate"
    );
    // 5 a second from then on: 20 in the 4 s that follow (the old rate allows 2; a loaded
    // machine may write pages slower than 5 a second), never closer than 200 ms.
    let settled: Vec<&LoggedRequest> = after
        .iter()
        .filter(|r| {
            r.time >= changed + chrono::Duration::seconds(1)
                && r.time < changed + chrono::Duration::seconds(5)
        })
        .collect();
    assert!(
        settled.len() >= 10,
        "{} requests in 4 s at 5/s",
        settled.len()
    );
    let gap = shortest_gap(&after);
    assert!(gap >= least_gap(200), "{gap:?}");
}

#[tokio::test]
async fn at_the_default_rate_sixty_seconds_hold_at_most_twenty_one_requests() {
    let harness = Harness::start(generated(3000), &["Account", "Contact"]).await;
    // Polling alone: a Change Data Capture stream's handshakes take slots of the same
    // limiter without being counted requests.
    harness
        .set_org("rate_requests = 1, rate_period_ms = 3000, cdc_enabled = false")
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
        shortest_gap(&requests) >= least_gap(3000),
        "{:?}",
        shortest_gap(&requests)
    );
    let served: Vec<String> = requests.iter().map(object_of).collect();
    assert!(
        served.windows(2).all(|pair| pair[0] != pair[1]),
        "not round-robin: {served:?}"
    );
}
