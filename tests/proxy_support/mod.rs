//! The world the proxy's end-to-end tests run in: an emulated org over real HTTP, a
//! throwaway PostgreSQL whose mirror the real sync has backfilled (with the capture
//! triggers on its tables), and the proxy in front of it, pushing to the org.

// Test helpers: a failure should stop the test at the line that broke, like the tests
// themselves (clippy.toml allows unwrap in test functions but not in their helpers).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Map, Value};
use sfpg_control::objects::Phase;
use sfpg_control::{MasterKey, NewOrg, connect, orgs};
use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, OrgSource, RunningEmulator,
};
use sfpg_proxy::{ClientLimits, Proxy, ProxyConfig, PushConfig, UpstreamAddr};
use sfpg_sync::{OrgSync, SyncSettings};
use sfpg_testkit::TestDatabase;
use tokio::task::JoinHandle;

#[path = "../../sync/tests/emulated/mirror.rs"]
mod mirror;

pub const ORG: &str = "acme";
pub const SCHEMA: &str = "salesforce";
/// Test key for the orgs' sealed credentials (32 bytes).
pub const MASTER_KEY: [u8; 32] = [7; 32];
/// The same, base64, as `SFPG_MASTER_KEY` takes it.
pub const MASTER_KEY_BASE64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

pub struct World {
    pub emulator: RunningEmulator,
    pub db: TestDatabase,
    pub proxy: SocketAddr,
    proxy_task: JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.proxy_task.abort();
    }
}

/// Settings that keep the sync's timers out of the way.
pub fn quiet_settings() -> SyncSettings {
    SyncSettings {
        describe_interval: Duration::from_secs(3600),
        deleted_interval: Duration::from_secs(3600),
        reconcile_interval: Duration::from_secs(24 * 3600),
        error_backoff: Duration::ZERO,
        ..SyncSettings::default()
    }
}

impl World {
    /// An org with `records` generated records, its `objects` mirrored into schema
    /// `salesforce`, and a proxy.
    pub async fn start(objects: &[&str], records: usize) -> World {
        let emulator = sfpg_emulator::http::start(EmulatorConfig {
            org: OrgSource::Generated { records, seed: 11 },
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let db = TestDatabase::create().await;
        register_org(&db, &emulator, objects).await;
        mirror_objects(&db, objects).await;
        let proxy = Proxy::bind(ProxyConfig {
            listen: "127.0.0.1:0".into(),
            upstream: upstream(&db),
            tls: None,
            push: Some(PushConfig {
                control: db.config(),
                master_key: MasterKey::from_bytes(MASTER_KEY),
                repair_every: Duration::from_secs(3600),
                failpoint: None,
            }),
            session_threads: 1,
            limits: ClientLimits::default(),
        })
        .await
        .unwrap();
        let addr = proxy.local_addr().unwrap();
        let proxy_task = tokio::spawn(async move {
            proxy.serve().await.unwrap();
        });
        World {
            emulator,
            db,
            proxy: addr,
            proxy_task,
        }
    }

    /// A client through the proxy.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = self
            .proxy_config()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// The test database's settings, pointed at the proxy.
    pub fn proxy_config(&self) -> tokio_postgres::Config {
        via(&self.db, self.proxy)
    }

    /// A libpq-style connection string through the proxy.
    pub fn proxy_conninfo(&self) -> String {
        let server = self.db.server();
        format!(
            "host=127.0.0.1 port={} user={} dbname={} password={}",
            self.proxy.port(),
            server.user(),
            self.db.name(),
            server.password().unwrap_or("")
        )
    }

    /// The first `n` mirrored Accounts: (local id, sfid).
    pub async fn accounts(&self, n: i64) -> Vec<(i64, String)> {
        self.direct()
            .await
            .query(
                &format!("SELECT id, sfid FROM {SCHEMA}.account ORDER BY id LIMIT $1"),
                &[&n],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// A client straight to PostgreSQL.
    pub async fn direct(&self) -> tokio_postgres::Client {
        self.db.connect().await
    }

    /// Runs `turns` turns of the real sync over the org's live objects: each polls an object
    /// for what changed in Salesforce.
    pub async fn sync_turns(&self, turns: usize) {
        let mut sync = org_sync(&self.db).await;
        for _ in 0..turns {
            sync.turn().await.unwrap();
        }
    }

    /// Every difference between the org's records of `object` and its mirror.
    pub async fn mirror_diff(&self, object: &str) -> Vec<String> {
        mirror::mirror_diff(&self.emulator, &self.direct().await, ORG, object).await
    }

    pub async fn assert_mirror_equals_org(&self, object: &str) {
        let diff = self.mirror_diff(object).await;
        assert!(
            diff.is_empty(),
            "{object}: the mirror differs from the org:\n{}",
            diff.join("\n")
        );
    }

    /// A record of the org, read directly from the emulator.
    pub fn org_record(&self, object: &str, id: &str, fields: &[&str]) -> Option<Value> {
        let soql = format!(
            "SELECT {} FROM {object} WHERE Id = '{id}'",
            fields.join(", ")
        );
        self.emulator.with_org(|org| {
            let cursor = org.query(&soql, false).unwrap();
            org.page(&cursor, 0, cursor.len(), "62.0")
                .into_iter()
                .next()
        })
    }

    /// One field of a record of the org (panics when there is no such record).
    pub fn org_field(&self, object: &str, id: &str, field: &str) -> Value {
        let record = self.org_record(object, id, &[field]);
        record.expect("no such record in the org")[field].clone()
    }

    pub fn org_count(&self, object: &str) -> usize {
        self.emulator.with_org(|org| org.record_count(object))
    }

    /// How many Composite and sObject Collections calls the org has served: a push is
    /// one Composite request, its read-back one Collections retrieve per 200 records of a
    /// table.
    pub fn collection_calls(&self) -> usize {
        self.emulator
            .requests(0)
            .iter()
            .filter(|r| r.path.contains("/composite"))
            .count()
    }

    /// How many Composite requests (pushes) the org has served.
    pub fn composite_calls(&self) -> usize {
        self.emulator
            .requests(0)
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/composite"))
            .count()
    }

    /// A mirror row's column, as text.
    pub async fn mirror_value(&self, table: &str, sfid: &str, column: &str) -> Option<String> {
        self.direct()
            .await
            .query_opt(
                &format!("SELECT {column}::text FROM {SCHEMA}.{table} WHERE sfid = $1"),
                &[&sfid],
            )
            .await
            .unwrap()
            .and_then(|row| row.get(0))
    }
}

pub fn upstream(db: &TestDatabase) -> UpstreamAddr {
    let server = db.server();
    UpstreamAddr::Tcp {
        host: server.host().to_owned(),
        port: server.port(),
    }
}

pub fn via(db: &TestDatabase, addr: SocketAddr) -> tokio_postgres::Config {
    let server = db.server();
    let mut config = tokio_postgres::Config::new();
    config
        .host(addr.ip().to_string())
        .port(addr.port())
        .user(server.user())
        .dbname(db.name());
    if let Some(password) = server.password() {
        config.password(password);
    }
    config
}

/// Registers the org as `sfpg org add` would, with a rate that never holds a test up.
pub async fn register_org(db: &TestDatabase, emulator: &RunningEmulator, objects: &[&str]) {
    register_org_in(&mut db.connect().await, emulator, objects).await;
}

/// [`register_org`] in the database `client` is connected to.
pub async fn register_org_in(
    client: &mut tokio_postgres::Client,
    emulator: &RunningEmulator,
    objects: &[&str],
) {
    sfpg_control::apply_control_schema(client).await.unwrap();
    let org = NewOrg {
        schema_name: SCHEMA.to_owned(),
        ..NewOrg::client_credentials(
            ORG,
            emulator.login_url(),
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            objects,
        )
    };
    orgs::insert(client, &org, &MasterKey::from_bytes(MASTER_KEY))
        .await
        .unwrap();
    client
        .execute(
            "UPDATE sfpg.orgs SET rate_requests = 1000, rate_period_ms = 1000 WHERE name = $1",
            &[&ORG],
        )
        .await
        .unwrap();
}

/// Backfills the org's objects with the real sync, then makes sure every mirrored table
/// has its capture triggers.
pub async fn mirror_objects(db: &TestDatabase, objects: &[&str]) {
    let client = db.connect().await;
    let mut sync = org_sync(db).await;
    for _ in 0..1000 {
        if sync.objects().iter().all(|o| o.state.phase == Phase::Live) {
            break;
        }
        sync.turn().await.unwrap();
    }
    assert!(
        sync.objects().iter().all(|o| o.state.phase == Phase::Live),
        "the backfill did not finish"
    );
    for object in objects {
        let table: String = client
            .query_one(
                "SELECT table_name FROM sfpg.objects WHERE org_name = $1 AND object_name = $2",
                &[&ORG, object],
            )
            .await
            .unwrap()
            .get(0);
        // The sync installs them when it creates a table; installing again is harmless.
        sfpg_control::capture::install_capture_trigger(&client, SCHEMA, &table)
            .await
            .unwrap();
    }
}

/// The real sync of the registered org, resuming from what the mirror holds.
async fn org_sync(db: &TestDatabase) -> OrgSync {
    let client = db.connect().await;
    let org = orgs::load(&client, ORG, &MasterKey::from_bytes(MASTER_KEY))
        .await
        .unwrap();
    let salesforce = connect::client(
        &org,
        sfpg_salesforce::RateLimiter::new(connect::rate(&org).unwrap()),
    )
    .unwrap();
    OrgSync::start(db.connect().await, salesforce, ORG, quiet_settings())
        .await
        .unwrap()
}

/// Every difference between the org's records of `object` and its mirror.
pub async fn mirror_diff_of(
    emulator: &RunningEmulator,
    client: &tokio_postgres::Client,
    org: &str,
    object: &str,
) -> Vec<String> {
    mirror::mirror_diff(emulator, client, org, object).await
}

/// A JSON object literal as a record map.
pub fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}
