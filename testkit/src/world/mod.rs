//! The world the cross-crate tests run in: an emulated org over real HTTP, a test database
//! where the org is registered as `sfpg org add` registers it, its mirror backfilled by the
//! real sync (with the capture triggers on its tables), and, with the `proxy` feature, the
//! proxy in front of it pushing to the org. Also the one comparison that matters: does the
//! mirror hold exactly the org's records, field for field?
//!
//! Behind the `world` feature: it builds the emulator, the control crate and the sync.

// Test support panics on purpose: a failed setup is a failed test, stopped at the line
// that broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mirror;
mod org;

use std::time::Duration;

use serde_json::{Map, Value};
use sfpg_control::MasterKey;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_sync::SyncSettings;

pub use self::mirror::{assert_mirror_equals_org, mirror_diff, org_records};
pub use self::org::{
    mirror_objects, org_sync, register_org, register_org_as, register_org_in, salesforce_client,
};
use crate::TestDatabase;

/// The org's name in sfpg.
pub const ORG: &str = "acme";
/// Where its tables go.
pub const SCHEMA: &str = "salesforce";
/// Test key for the orgs' sealed credentials (32 bytes).
pub const MASTER_KEY: [u8; 32] = [7; 32];
/// The same, base64, as `SFPG_MASTER_KEY` takes it.
pub const MASTER_KEY_BASE64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The key the test orgs' credentials are sealed with.
pub fn master_key() -> MasterKey {
    MasterKey::from_bytes(MASTER_KEY)
}

/// Sync settings that keep timers out of the way unless a test asks for them.
pub fn quiet_settings() -> SyncSettings {
    SyncSettings {
        describe_interval: Duration::from_secs(3600),
        deleted_interval: Duration::from_secs(3600),
        reconcile_interval: Duration::from_secs(24 * 3600),
        error_backoff: Duration::ZERO,
        ..SyncSettings::default()
    }
}

/// An emulated org with `records` generated records from `seed`.
pub fn generated(records: usize, seed: u64) -> EmulatorConfig {
    EmulatorConfig {
        org: OrgSource::Generated { records, seed },
        ..EmulatorConfig::default()
    }
}

/// A JSON object's map.
pub fn map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not a JSON object: {other}"),
    }
}

/// The sfids of the first `n` mirrored Accounts in [`SCHEMA`], in sfid order.
pub async fn account_sfids(client: &tokio_postgres::Client, n: i64) -> Vec<String> {
    client
        .query(
            &format!("SELECT sfid FROM {SCHEMA}.account ORDER BY sfid LIMIT $1"),
            &[&n],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Waits until every object of every org in `client`'s database is live; panics after
/// `within`.
pub async fn wait_all_live(client: &tokio_postgres::Client, within: Duration) {
    crate::process::eventually("every object live", within, async || {
        client
            .query_one("SELECT bool_and(phase = 'live') FROM sfpg.objects", &[])
            .await
            .unwrap()
            .get::<_, Option<bool>>(0)
            .unwrap_or(false)
    })
    .await;
}

/// The SOQL of a logged query request, decoded.
pub fn soql_of(request: &sfpg_emulator::http::LoggedRequest) -> Option<String> {
    let query = request.query.as_deref()?;
    let encoded = query.split('&').find_map(|pair| pair.strip_prefix("q="))?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut iter = encoded.bytes();
    while let Some(byte) = iter.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex: Vec<u8> = iter.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

/// An emulated org mirrored into a test database, and maybe a proxy in front of it.
pub struct World {
    pub emulator: RunningEmulator,
    pub db: TestDatabase,
    #[cfg(feature = "proxy")]
    proxy: Option<crate::proxy::RunningProxy>,
}

impl World {
    /// An org with `records` generated records, its `objects` mirrored into [`SCHEMA`], and
    /// a proxy.
    #[cfg(feature = "proxy")]
    pub async fn start(objects: &[&str], records: usize) -> World {
        World::mirrored(generated(records, 11), objects)
            .await
            .with_proxy()
            .await
    }

    /// The org an emulator of `config` serves, registered and its `objects` backfilled
    /// into [`SCHEMA`]; no proxy.
    pub async fn mirrored(config: EmulatorConfig, objects: &[&str]) -> World {
        let emulator = sfpg_emulator::http::start(config).await.unwrap();
        let db = TestDatabase::create().await;
        register_org(&db, &emulator, objects).await;
        mirror_objects(&db, objects).await;
        World {
            emulator,
            db,
            #[cfg(feature = "proxy")]
            proxy: None,
        }
    }

    /// The same world with a proxy in front of its database, pushing to the org.
    #[cfg(feature = "proxy")]
    pub async fn with_proxy(mut self) -> World {
        let setup = crate::proxy::ProxySetup {
            push_with: Some(master_key()),
            ..crate::proxy::ProxySetup::default()
        };
        self.proxy = Some(crate::proxy::start_proxy(&self.db, setup).await);
        self
    }

    /// Where the proxy listens (panics in a world without one).
    #[cfg(feature = "proxy")]
    pub fn proxy(&self) -> std::net::SocketAddr {
        self.proxy.as_ref().expect("a world without a proxy").addr
    }

    /// A client through the proxy.
    #[cfg(feature = "proxy")]
    pub async fn client(&self) -> tokio_postgres::Client {
        self.db.connect_via(self.proxy()).await
    }

    /// The test database's settings, pointed at the proxy.
    #[cfg(feature = "proxy")]
    pub fn proxy_config(&self) -> tokio_postgres::Config {
        self.db.config_via(self.proxy())
    }

    /// A libpq-style connection string through the proxy.
    #[cfg(feature = "proxy")]
    pub fn proxy_conninfo(&self) -> String {
        let server = self.db.server();
        format!(
            "host=127.0.0.1 port={} user={} dbname={} password={}",
            self.proxy().port(),
            server.user(),
            self.db.name(),
            server.password().unwrap_or("")
        )
    }

    /// A client straight to PostgreSQL.
    pub async fn direct(&self) -> tokio_postgres::Client {
        self.db.connect().await
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

    /// The sfids of the first `n` mirrored Accounts, in sfid order.
    pub async fn account_sfids(&self, n: i64) -> Vec<String> {
        account_sfids(&self.direct().await, n).await
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
        mirror_diff(&self.emulator, &self.direct().await, ORG, object).await
    }

    /// Asserts that the mirror holds exactly the org's records of `object`.
    pub async fn assert_mirror_equals_org(&self, object: &str) {
        let client = self.direct().await;
        assert_mirror_equals_org(&self.emulator, &client, ORG, &[object]).await;
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

    /// Has the emulator answer the requests of `method` (any, when `None`) to `path` (a
    /// pattern, `*` for any run of characters) `ms` milliseconds late.
    pub fn answer_late(&self, method: Option<&str>, path: &str, ms: u64) {
        self.emulator
            .set_latency(Some(sfpg_emulator::http::Latency {
                fixed_ms: ms,
                jitter_ms: 0,
                matcher: sfpg_emulator::http::RequestMatcher {
                    method: method.map(str::to_owned),
                    path: Some(path.to_owned()),
                },
            }));
    }

    /// Deletes record `id` of `object` in the org, as its default user: someone's change in
    /// Salesforce, not through sfpg.
    pub fn delete_in_org(&self, object: &str, id: &str) {
        let user = self
            .emulator
            .user_id(sfpg_emulator::http::DEFAULT_USERNAME)
            .expect("the org's default user");
        let user = sfpg_emulator::ids::Id::parse(&user).expect("a user Id");
        self.emulator
            .with_org_mut(|org| org.delete(object, id, &user))
            .expect("the record deleted");
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
}
