//! `sfpg run`, the real binary: the sync and the proxy in one process. It backfills an
//! emulated org, a write through its proxy reaches the org and the mirror, and on SIGTERM it
//! stops gracefully: an idle session is closed, a transaction in progress may still commit
//! (its push goes to Salesforce), and the process exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::{TestProcess, eventually};
use sfpg_testkit::world::{ORG, account_sfids, register_org, wait_all_live};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info");

/// Starts `sfpg run` on a free port and returns it with the proxy's address; it is killed
/// when dropped, so a failing test does not leave it behind.
fn start_run(db: &TestDatabase) -> (TestProcess, SocketAddr) {
    SFPG.start_listening(
        db.url(),
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--no-progress",
            "--shutdown-grace",
            "60s",
        ],
    )
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

    let (mut child, addr) = start_run(&db);
    let direct = db.connect().await;
    wait_live(&direct).await;

    let ids = account_sfids(&direct, 2).await;
    let (first, second) = (&ids[0], &ids[1]);

    // An autocommit write through the proxy reaches the org, then the mirror.
    let writer = db.connect_via(addr).await;
    let changed = set_city(&writer, first, "Porto").await;
    assert_eq!(changed, 1);
    assert_eq!(org_city(&emulator, first).as_deref(), Some("Porto"));
    assert_eq!(mirror_city(&direct, first).await.as_deref(), Some("Porto"));

    // At SIGTERM: one session idle, one in the middle of a transaction.
    let idle = db.connect_via(addr).await;
    idle.simple_query("SELECT 1").await.unwrap();
    writer.batch_execute("BEGIN").await.unwrap();
    set_city(&writer, second, "Faro").await;
    child.signal("TERM");

    // The idle session is closed as a stopping PostgreSQL closes it…
    eventually(
        "the idle session closed",
        Duration::from_secs(30),
        async || idle.is_closed(),
    )
    .await;
    // …no new session is accepted…
    let refused = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .unwrap();
    assert!(refused.is_err(), "the stopping proxy accepted a connection");
    // …while the transaction goes on, and its COMMIT still pushes to Salesforce.
    assert!(child.try_wait().is_none(), "exited mid-transaction");
    writer.batch_execute("COMMIT").await.unwrap();
    assert_eq!(org_city(&emulator, second).as_deref(), Some("Faro"));
    assert_eq!(mirror_city(&direct, second).await.as_deref(), Some("Faro"));

    let status = child.exit_within(Duration::from_secs(30)).await;
    assert!(status.success(), "sfpg run exited with {status}");
    assert!(writer.simple_query("SELECT 1").await.is_err());
}

/// Waits until every object of the org is live.
async fn wait_live(direct: &tokio_postgres::Client) {
    wait_all_live(direct, Duration::from_secs(120)).await;
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
    let (mut child, addr) = start_run(&db);
    wait_live(&direct).await;
    let first = account_sfids(&direct, 1).await.remove(0);
    // The proxy logs in for its first push, with the token the sync's login left.
    let writer = db.connect_via(addr).await;
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
    child.signal("TERM");
    let status = child.exit_within(Duration::from_secs(30)).await;
    assert!(status.success(), "sfpg run exited with {status}");
    let (child, addr) = start_run(&db);
    let created = new_account(&emulator, "After restart");
    wait_mirrored(&direct, &created).await;
    let writer = db.connect_via(addr).await;
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
        &MasterKey::from_bytes(sfpg_testkit::world::MASTER_KEY),
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
