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

/// A running `sfpg run`, killed when dropped: a failing test must not leave it behind.
struct RunProcess(Child);

impl std::ops::Deref for RunProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for RunProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for RunProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sfpg run` on a free port and returns it with the proxy's address.
async fn start_run(db: &TestDatabase) -> (RunProcess, SocketAddr) {
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
    (RunProcess(child), addr)
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

/// Sets an account's BillingCity through the proxy; returns the rows changed.
async fn set_city(writer: &tokio_postgres::Client, sfid: &str, city: &str) -> u64 {
    writer
        .execute(
            "UPDATE salesforce.account SET billingcity = $2 WHERE sfid = $1",
            &[&sfid, &city],
        )
        .await
        .unwrap()
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
    wait_live(&direct).await;

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
    let changed = set_city(&writer, first, "Porto").await;
    assert_eq!(changed, 1);
    assert_eq!(org_city(&emulator, first).as_deref(), Some("Porto"));
    assert_eq!(mirror_city(&direct, first).await.as_deref(), Some("Porto"));

    // At SIGTERM: one session idle, one in the middle of a transaction.
    let idle = through(&db, addr).await;
    idle.simple_query("SELECT 1").await.unwrap();
    writer.batch_execute("BEGIN").await.unwrap();
    set_city(&writer, second, "Faro").await;
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

/// Polls `holds` until it is true, or panics after `within` naming `what` (a running
/// `sfpg run` is killed as its [`RunProcess`] drops).
async fn eventually<F, Fut>(what: &str, within: Duration, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !holds().await {
        assert!(
            Instant::now() < deadline,
            "waited {within:?} in vain for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every object of the org is live.
async fn wait_live(direct: &tokio_postgres::Client) {
    eventually("every object live", Duration::from_secs(120), || async {
        let not_live: i64 = direct
            .query_one(
                "SELECT count(*) FILTER (WHERE phase <> 'live') FROM sfpg.objects WHERE org_name = $1",
                &[&ORG],
            )
            .await
            .unwrap()
            .get(0);
        not_live == 0
    })
    .await;
}

/// Waits until the sync has mirrored the account `sfid`.
async fn wait_mirrored(direct: &tokio_postgres::Client, sfid: &str) {
    eventually(
        &format!("account {sfid} mirrored"),
        Duration::from_secs(60),
        || async {
            direct
                .query_opt("SELECT 1 FROM salesforce.account WHERE sfid = $1", &[&sfid])
                .await
                .unwrap()
                .is_some()
        },
    )
    .await;
}

/// An org whose connected app rotates refresh tokens: every refresh uses up the token it
/// sent. The sync and the proxy of one process each log in, and each must find the token
/// the other left; after the sessions end, and after a restart, both still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotating_refresh_token_outlives_sessions_and_restarts() {
    let mut settings = EmulatorConfig {
        org: OrgSource::Generated {
            records: 20,
            seed: 9,
        },
        ..EmulatorConfig::default()
    };
    settings.apps[0].rotate_refresh_tokens = true;
    let emulator = sfpg_emulator::http::start(settings).await.unwrap();
    let db = TestDatabase::create().await;
    register_org(&db, &emulator, &["Account"]).await;
    let refresh_token = emulator
        .issue_refresh_token(
            sfpg_emulator::http::DEFAULT_USERNAME,
            sfpg_emulator::http::DEFAULT_CLIENT_ID,
        )
        .unwrap();
    use_refresh_token(&db, &refresh_token).await;

    let direct = db.connect().await;
    let (mut child, addr) = start_run(&db).await;
    wait_live(&direct).await;
    let first: String = direct
        .query_one(
            "SELECT sfid FROM salesforce.account ORDER BY sfid LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The proxy logs in for its first push, with the token the sync's login left.
    let writer = through(&db, addr).await;
    set_city(&writer, &first, "Braga").await;
    assert_eq!(org_city(&emulator, &first).as_deref(), Some("Braga"));

    // Every session ends: the sync and the proxy log in again, each holding a token the
    // other's login used up.
    emulator.revoke_sessions(None, false);
    let created = new_account(&emulator, "After revocation");
    wait_mirrored(&direct, &created).await;
    set_city(&writer, &first, "Evora").await;
    assert_eq!(org_city(&emulator, &first).as_deref(), Some("Evora"));
    assert_eq!(mirror_city(&direct, &first).await.as_deref(), Some("Evora"));

    // A restart logs in with what is stored.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = exit_status(&mut child, Duration::from_secs(30)).await;
    assert!(status.success(), "sfpg run exited with {status}");
    let (child, addr) = start_run(&db).await;
    let created = new_account(&emulator, "After restart");
    wait_mirrored(&direct, &created).await;
    let writer = through(&db, addr).await;
    set_city(&writer, &first, "Lagos").await;
    assert_eq!(org_city(&emulator, &first).as_deref(), Some("Lagos"));
    // The token given at registration is no longer what is stored, nor anywhere readable.
    let sealed: Vec<u8> = direct
        .query_one("SELECT sealed_credentials FROM sfpg.orgs", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!String::from_utf8_lossy(&sealed).contains(&refresh_token));
    drop(child);
}

/// Switches the registered org to the refresh-token flow with `token`.
async fn use_refresh_token(db: &TestDatabase, token: &str) {
    use secrecy::SecretString;
    use sfpg_control::{MasterKey, orgs};
    let mut client = db.connect().await;
    client
        .execute(
            "UPDATE sfpg.orgs SET auth_flow = 'refresh_token' WHERE name = $1",
            &[&ORG],
        )
        .await
        .unwrap();
    orgs::save_refresh_token(
        &mut client,
        ORG,
        &SecretString::from(token.to_owned()),
        &MasterKey::from_bytes(proxy_support::MASTER_KEY),
    )
    .await
    .unwrap();
}

/// Creates an account in the org directly, as a Salesforce user would.
fn new_account(emulator: &RunningEmulator, name: &str) -> String {
    let fields = serde_json::json!({ "Name": name });
    emulator
        .create_as("Account", fields.as_object().unwrap(), None)
        .unwrap()
}
