//! `sfpg proxy`, the real binary, killed with SIGKILL between Salesforce accepting a push
//! and the local COMMIT (a failpoint holds it there). After a restart, the write journal's
//! repair makes the mirror equal the org again.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxy_support::{MASTER_KEY_BASE64, ORG, mirror_objects, register_org, via};
use sfpg_emulator::http::EmulatorConfig;
use sfpg_testkit::TestDatabase;

/// A started `sfpg proxy`, killed when dropped, so that a failing test leaves no process
/// behind.
struct ProxyProcess(Child);

impl ProxyProcess {
    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sfpg proxy` on a free port; returns the process and its address.
fn start_proxy(db: &TestDatabase, failpoint: Option<&str>) -> (ProxyProcess, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfpg"));
    command
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--repair-every",
            "200ms",
        ])
        .env("DATABASE_URL", db.url())
        .env("SFPG_MASTER_KEY", MASTER_KEY_BASE64)
        .env("RUST_LOG", "sfpg=info,sfpg_proxy=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(failpoint) = failpoint {
        command.env("SFPG_PROXY_FAILPOINT", failpoint);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (ProxyProcess(child), addr)
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_proxy_killed_between_push_and_commit_is_repaired_on_restart() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: sfpg_emulator::http::OrgSource::Generated {
            records: 40,
            seed: 5,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    register_org(&db, &emulator, &["Account"]).await;
    mirror_objects(&db, &["Account"]).await;
    let direct = db.connect().await;
    let (id, sfid): (i64, String) = {
        let row = direct
            .query_one(
                "SELECT id, sfid FROM salesforce.account ORDER BY id LIMIT 1",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };

    let (mut proxy, addr) = start_proxy(&db, Some("pause-after-push"));
    let (client, connection) = via(&db, addr).connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let writes = tokio::spawn(async move {
        client
            .batch_execute(&format!(
                "BEGIN;
                 UPDATE salesforce.account SET billingcity = 'After the crash' WHERE id = {id};
                 INSERT INTO salesforce.account (name) VALUES ('Born in a crash');
                 COMMIT"
            ))
            .await
    });

    // Salesforce has the push and the journal has recorded it; the proxy is stopped just
    // before writing the mirror and committing.
    wait_for("the journaled push", async || {
        direct
            .query_one(
                "SELECT count(*) FROM sfpg.write_journal WHERE outcome = 'pushed'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    assert!(writes.await.unwrap().is_err(), "the client saw a commit");

    // The org moved on, the mirror did not.
    let org_city = |emulator: &sfpg_emulator::http::RunningEmulator| {
        emulator.with_org(|org| {
            let soql = format!("SELECT BillingCity FROM Account WHERE Id = '{sfid}'");
            let cursor = org.query(&soql, false).unwrap();
            org.page(&cursor, 0, cursor.len(), "62.0")[0]["BillingCity"].clone()
        })
    };
    assert_eq!(org_city(&emulator), serde_json::json!("After the crash"));
    let mirrored: Option<String> = direct
        .query_one(
            "SELECT billingcity FROM salesforce.account WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(mirrored.as_deref(), Some("After the crash"));

    // A restart repairs it.
    let (mut proxy, _) = start_proxy(&db, None);
    let diff = repaired_by(&mut proxy, &emulator, &direct).await;
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    let born: i64 = direct
        .query_one(
            "SELECT count(*) FROM salesforce.account WHERE name = 'Born in a crash' AND sfid IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(born, 1);
}

/// The journal is written as soon as Salesforce accepts a push, before the read-back of
/// what Salesforce set: a proxy killed while that read is under way leaves an entry, and the
/// restart repairs the mirror from it.
#[tokio::test]
async fn a_proxy_killed_during_the_read_back_is_repaired_on_restart() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: sfpg_emulator::http::OrgSource::Generated {
            records: 20,
            seed: 6,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    register_org(&db, &emulator, &["Account"]).await;
    mirror_objects(&db, &["Account"]).await;
    let direct = db.connect().await;
    let id: i64 = direct
        .query_one("SELECT id FROM salesforce.account ORDER BY id LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    // The read-back (a Collections retrieve) is slow; the push itself is not.
    emulator.set_latency(Some(sfpg_emulator::http::Latency {
        fixed_ms: 60_000,
        jitter_ms: 0,
        matcher: sfpg_emulator::http::RequestMatcher {
            method: Some("GET".into()),
            path: Some("/services/data/*/composite/sobjects/*".into()),
        },
    }));
    let (mut proxy, addr) = start_proxy(&db, None);
    let (client, connection) = via(&db, addr).connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let writes = tokio::spawn(async move {
        client
            .batch_execute(&format!(
                "UPDATE salesforce.account SET billingcity = 'Read back later' WHERE id = {id}"
            ))
            .await
    });
    // The request log lists a request once answered: the push is, the read-back is held.
    wait_for("the push", async || {
        emulator
            .requests(0)
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/composite"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    assert!(writes.await.unwrap().is_err(), "the client saw a commit");
    let journaled: i64 = direct
        .query_one(
            "SELECT count(*) FROM sfpg.write_journal WHERE outcome = 'pushed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        journaled, 1,
        "Salesforce accepted a push the journal does not know"
    );

    emulator.set_latency(None);
    let (mut proxy, _) = start_proxy(&db, None);
    let diff = repaired_by(&mut proxy, &emulator, &direct).await;
    assert!(diff.is_empty(), "{}", diff.join("\n"));
}

/// Waits until the journal's one entry is repaired, stops `proxy`, and returns every
/// difference between the org's Accounts and the mirror's.
async fn repaired_by(
    proxy: &mut ProxyProcess,
    emulator: &sfpg_emulator::http::RunningEmulator,
    direct: &tokio_postgres::Client,
) -> Vec<String> {
    wait_for("the repair", async || {
        direct
            .query_one(
                "SELECT count(*) FROM sfpg.write_journal WHERE resolution = 'repaired'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    proxy_support_mirror_diff(emulator, direct).await
}

async fn proxy_support_mirror_diff(
    emulator: &sfpg_emulator::http::RunningEmulator,
    client: &tokio_postgres::Client,
) -> Vec<String> {
    proxy_support::mirror_diff_of(emulator, client, ORG, "Account").await
}
