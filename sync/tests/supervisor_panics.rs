//! An org's task that panics (made to, through the `failpoints` feature) is restarted by
//! the supervisor, which logs the panic with the org's name and records it in
//! `sfpg.orgs.last_error`; the org then syncs again.
//!
//! A test binary of its own: it captures log lines through a tracing subscriber, which is
//! process-wide state that tests running beside it would race.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sfpg_sync::{StoredCredentials, Supervisor};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::eventually;
use sfpg_testkit::world::{self, ORG, map, master_key, quiet_settings};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Makes this the log of the current thread, until the guard drops.
    fn subscribe(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

// One thread: the org's task runs where the subscriber below is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_panicking_org_task_is_logged_recorded_and_restarted() {
    let captured = Captured::default();
    let _guard = captured.subscribe();

    let emulator = sfpg_emulator::http::start(world::generated(40, 7))
        .await
        .unwrap();
    let db = TestDatabase::create().await;
    let control = db.connect().await;
    world::register_org_as(&mut db.connect().await, &emulator, &["Account"], ORG).await;
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::new(
        db.config(),
        Arc::new(StoredCredentials::new(db.config(), master_key())),
        quiet_settings(),
    );
    let running = tokio::spawn(supervisor.run(shutdown.clone()));
    world::wait_all_live(&control, Duration::from_secs(60)).await;

    // Three turns in a row: a restart comes 100 ms after a panic, and the org's next
    // successful step clears its last error, so one panic's record may be gone before a
    // loaded machine lets this test look (it failed so once in a full run); each of the
    // three records it again, through about 0.7 s of restarts.
    sfpg_sync::failpoints::panic_in_next_turns(ORG, 3);
    eventually(
        "the panic in last_error",
        Duration::from_secs(20),
        async || {
            control
                .query_one("SELECT last_error FROM sfpg.orgs WHERE name = $1", &[&ORG])
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
                .is_some_and(|error| error.contains("failpoint: a turn of org acme panics"))
        },
    )
    .await;

    // Restarted: a change made in Salesforce after the panic reaches the mirror.
    let sfid: String = control
        .query_one("SELECT sfid FROM acme.account ORDER BY sfid LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    emulator
        .update_as(
            "Account",
            &sfid,
            &map(json!({"Name": "After the panic"})),
            None,
        )
        .unwrap();
    eventually(
        "the change after the restart",
        Duration::from_secs(20),
        async || {
            let row = control
                .query_opt("SELECT name FROM acme.account WHERE sfid = $1", &[&sfid])
                .await
                .unwrap();
            row.and_then(|r| r.get::<_, Option<String>>(0)).as_deref() == Some("After the panic")
        },
    )
    .await;
    // Each panic logged once.
    let logged = captured
        .lines()
        .into_iter()
        .filter(|line| line.contains("panicked") && line.contains("org=acme"))
        .count();
    assert_eq!(logged, 3, "{}", captured.lines().join("\n"));

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
