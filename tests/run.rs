//! `sfpg run`, the real binary: the sync and the proxy in one process. It backfills an
//! emulated org, a write through its proxy reaches the org and the mirror, and on SIGTERM it
//! stops gracefully: an idle session is closed, a transaction in progress may still commit
//! (its push goes to Salesforce), and the process exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxy_support::{MASTER_KEY_BASE64, ORG, register_org, via};
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;

/// Starts `sfpg run` on a free port and returns it with the proxy's address.
async fn start_run(db: &TestDatabase) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfpg"))
        .args(["run", "--listen", "127.0.0.1:0", "--no-progress"])
        .args(["--shutdown-grace", "60s"])
        .env("DATABASE_URL", db.url())
        .env("SFPG_MASTER_KEY", MASTER_KEY_BASE64)
        .env("RUST_LOG", "sfpg=info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await;
    let line = match first_line {
        Ok(read) => read.unwrap().unwrap(),
        Err(_) => {
            let _ = child.kill();
            panic!("sfpg run printed no address within a minute");
        }
    };
    let addr = line
        .trim()
        .strip_prefix("sfpg proxy listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// A client of the test database, through the proxy at `addr`.
async fn through(db: &TestDatabase, addr: SocketAddr) -> tokio_postgres::Client {
    let (client, connection) = via(db, addr).connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

fn org_city(emulator: &RunningEmulator, id: &str) -> Option<String> {
    emulator.with_org(|org| {
        let cursor = org
            .query(
                &format!("SELECT BillingCity FROM Account WHERE Id = '{id}'"),
                false,
            )
            .unwrap();
        let record = org
            .page(&cursor, 0, cursor.len(), "62.0")
            .into_iter()
            .next()?;
        record["BillingCity"].as_str().map(str::to_owned)
    })
}

async fn mirror_city(client: &tokio_postgres::Client, id: &str) -> Option<String> {
    client
        .query_one(
            "SELECT billingcity FROM salesforce.account WHERE sfid = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits (bounded) for the child to exit and returns whether it exited 0.
async fn exit_status(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sfpg run did not exit within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_syncs_proxies_and_stops_gracefully_on_sigterm() {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 300,
            seed: 5,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    // Registered as `sfpg org add` does, at a rate that holds nothing up.
    register_org(&db, &emulator, &["Account", "Contact"]).await;

    let (mut child, addr) = start_run(&db).await;
    let direct = db.connect().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let not_live: i64 = direct
            .query_one(
                "SELECT count(*) FILTER (WHERE phase <> 'live') FROM sfpg.objects WHERE org_name = $1",
                &[&ORG],
            )
            .await
            .unwrap()
            .get(0);
        if not_live == 0 {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the objects were not live within two minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ids: Vec<String> = direct
        .query(
            "SELECT sfid FROM salesforce.account ORDER BY sfid LIMIT 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let (first, second) = (&ids[0], &ids[1]);

    // An autocommit write through the proxy reaches the org, then the mirror.
    let writer = through(&db, addr).await;
    let changed = writer
        .execute(
            "UPDATE salesforce.account SET billingcity = 'Porto' WHERE sfid = $1",
            &[first],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(org_city(&emulator, first).as_deref(), Some("Porto"));
    assert_eq!(mirror_city(&direct, first).await.as_deref(), Some("Porto"));

    // At SIGTERM: one session idle, one in the middle of a transaction.
    let idle = through(&db, addr).await;
    idle.simple_query("SELECT 1").await.unwrap();
    writer.batch_execute("BEGIN").await.unwrap();
    writer
        .execute(
            "UPDATE salesforce.account SET billingcity = 'Faro' WHERE sfid = $1",
            &[second],
        )
        .await
        .unwrap();
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());

    // The idle session is closed as a stopping PostgreSQL closes it…
    let deadline = Instant::now() + Duration::from_secs(30);
    while !idle.is_closed() {
        assert!(Instant::now() < deadline, "the idle session was not closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // …no new session is accepted…
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .unwrap();
    assert!(refused.is_err(), "the stopping proxy accepted a connection");
    // …while the transaction goes on, and its COMMIT still pushes to Salesforce.
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited mid-transaction"
    );
    writer.batch_execute("COMMIT").await.unwrap();
    assert_eq!(org_city(&emulator, second).as_deref(), Some("Faro"));
    assert_eq!(mirror_city(&direct, second).await.as_deref(), Some("Faro"));

    let status = exit_status(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "sfpg run exited with {status}");
    assert!(writer.simple_query("SELECT 1").await.is_err());
}
