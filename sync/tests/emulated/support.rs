//! What every scenario needs: an emulated org over real HTTP, a throwaway PostgreSQL with the
//! control schema and the org registered (credentials sealed, as `sfpg org add` does), a
//! scheduler to drive turn by turn, and the one comparison that matters: does the mirror
//! hold exactly the org's records, field for field? Registration, the org's client and the
//! comparison are `sfpg_testkit::world`'s, shared with the workspace's end-to-end tests;
//! here the org's tables go into a schema named after it, and the tests drive the sync.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Timelike, Utc};

use serde_json::Value;
use sfpg_control::MasterKey;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_emulator::org::{ManualClock, Org};
use sfpg_salesforce::{Client, RetryPolicy};
use sfpg_sync::{OrgSync, SyncSettings, TurnReport};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::world;
pub use sfpg_testkit::world::{ORG, map, master_key, quiet_settings, soql_of};

/// An emulated org with `records` generated records.
pub fn generated(records: usize) -> EmulatorConfig {
    world::generated(records, 7)
}

/// An emulated org whose clock stands still until the test moves it, with `records`
/// generated records: every change gets the same `SystemModstamp` until then.
pub fn frozen(records: usize) -> (EmulatorConfig, ManualClock) {
    let clock = ManualClock::new(Utc::now().with_nanosecond(0).unwrap());
    let mut org = Org::with_clock(Arc::new(clock.clone())).unwrap();
    sfpg_emulator::generator::generate(&mut org, records, 7).unwrap();
    let config = EmulatorConfig {
        org: OrgSource::Given(Box::new(org)),
        ..EmulatorConfig::default()
    };
    (config, clock)
}

/// Retries fast enough for a test to see several in a second.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_elapsed: Duration::from_secs(10),
    }
}

pub struct Harness {
    pub emulator: RunningEmulator,
    pub db: TestDatabase,
    pub key: MasterKey,
}

impl Harness {
    /// Starts the emulator, creates the database, applies the control schema and registers
    /// the org with `objects` (its tables in schema `acme`), without a rate limit to speak
    /// of.
    pub async fn start(config: EmulatorConfig, objects: &[&str]) -> Self {
        let emulator = sfpg_emulator::http::start(config).await.unwrap();
        let db = TestDatabase::create().await;
        world::register_org_as(&mut db.connect().await, &emulator, objects, ORG).await;
        Self {
            emulator,
            db,
            key: master_key(),
        }
    }

    /// Stops the emulator and starts another on the same address serving `org`: how a test
    /// changes an org's metadata. Access tokens do not carry over, as after a session
    /// expiry.
    pub async fn replace_org(self, org: Org) -> Self {
        let Harness { emulator, db, key } = self;
        let listen = emulator.local_addr();
        emulator.shutdown().await;
        let config = EmulatorConfig {
            listen,
            org: OrgSource::Given(Box::new(org)),
            ..EmulatorConfig::default()
        };
        let emulator = sfpg_emulator::http::start(config).await.unwrap();
        Harness { emulator, db, key }
    }

    /// Changes the org's row: `assignments` is an SQL `SET` list.
    pub async fn set_org(&self, assignments: &str) {
        let client = self.db.connect().await;
        client
            .execute(
                &format!("UPDATE sfpg.orgs SET {assignments} WHERE name = $1"),
                &[&ORG],
            )
            .await
            .unwrap();
    }

    /// The org's client from its stored credentials, retrying fast and timing out after
    /// `timeout`.
    pub async fn salesforce_with_timeout(&self, timeout: Duration) -> Client {
        world::salesforce_client(&self.db, |config| {
            config
                .with_retry(fast_retries())
                .with_request_timeout(timeout)
        })
        .await
    }

    pub async fn salesforce(&self) -> Client {
        self.salesforce_with_timeout(Duration::from_secs(30)).await
    }

    /// A scheduler for the org, on its own connection.
    pub async fn org_sync(&self, settings: SyncSettings) -> OrgSync {
        let client = self.salesforce().await;
        self.org_sync_with(client, settings).await
    }

    /// A scheduler for the org with this client.
    pub async fn org_sync_with(&self, client: Client, settings: SyncSettings) -> OrgSync {
        OrgSync::start(self.db.connect().await, client, ORG, settings)
            .await
            .unwrap()
    }

    /// Creates a record as the org's user (no API call); returns its Id.
    pub fn create(&self, object: &str, fields: Value) -> String {
        self.emulator.create_as(object, &map(fields), None).unwrap()
    }

    pub fn update(&self, object: &str, id: &str, fields: Value) {
        self.emulator
            .update_as(object, id, &map(fields), None)
            .unwrap();
    }

    pub fn delete(&self, object: &str, id: &str) {
        self.emulator.delete_as(object, id, None).unwrap();
    }

    /// The org's live records of `object` with `fields`, read from the emulator directly.
    pub fn org_records(&self, object: &str, fields: &[String]) -> Vec<Value> {
        world::org_records(&self.emulator, object, fields)
    }

    /// A mirror row's column, as text.
    pub async fn mirror_value(&self, table: &str, id: &str, column: &str) -> Option<String> {
        let client = self.db.connect().await;
        client
            .query_opt(
                &format!("SELECT {column}::text FROM {ORG}.{table} WHERE sfid = $1"),
                &[&id],
            )
            .await
            .unwrap()
            .and_then(|row| row.get(0))
    }

    /// How many rows the mirror table holds.
    pub async fn mirror_count(&self, table: &str) -> i64 {
        let client = self.db.connect().await;
        client
            .query_one(&format!("SELECT count(*) FROM {ORG}.{table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Asserts that the mirror holds exactly the org's records of `object`.
    pub async fn assert_mirror_equals_org(&self, object: &str) {
        let client = self.db.connect().await;
        world::assert_mirror_equals_org(&self.emulator, &client, ORG, &[object]).await;
    }
}

/// Turns until `done` says so, failing after `max_turns`; returns the reports.
pub async fn turn_until(
    sync: &mut OrgSync,
    max_turns: usize,
    mut done: impl FnMut(&OrgSync) -> bool,
) -> Vec<TurnReport> {
    let mut reports = Vec::new();
    for _ in 0..max_turns {
        if done(sync) {
            return reports;
        }
        reports.push(sync.turn().await.unwrap());
    }
    assert!(
        done(sync),
        "not done after {max_turns} turns: {:#?}",
        reports.iter().rev().take(5).collect::<Vec<_>>()
    );
    reports
}

/// Runs `turns` turns, whatever they do.
pub async fn run_turns(sync: &mut OrgSync, turns: usize) -> Vec<TurnReport> {
    let mut reports = Vec::with_capacity(turns);
    for _ in 0..turns {
        reports.push(sync.turn().await.unwrap());
    }
    reports
}

/// Turns until `done` says so, sleeping when the scheduler is idle (as its run loop
/// would), and fails after `timeout`.
pub async fn drive_until(
    sync: &mut OrgSync,
    timeout: Duration,
    mut done: impl FnMut(&OrgSync) -> bool,
) -> Vec<TurnReport> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reports = Vec::new();
    while !done(sync) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not done after {timeout:?}: {:#?}",
            reports.iter().rev().take(5).collect::<Vec<_>>()
        );
        let report = sync.turn().await.unwrap();
        if let TurnReport::Idle { until } = &report {
            let nap = tokio::time::Instant::now() + Duration::from_millis(20);
            tokio::time::sleep_until(until.map_or(nap, |u| u.min(nap))).await;
        }
        reports.push(report);
    }
    reports
}

/// Turns for `duration`, sleeping when the scheduler is idle.
pub async fn drive_for(sync: &mut OrgSync, duration: Duration) -> Vec<TurnReport> {
    let end = tokio::time::Instant::now() + duration;
    let mut reports = Vec::new();
    while tokio::time::Instant::now() < end {
        let report = sync.turn().await.unwrap();
        if let TurnReport::Idle { until } = &report {
            let nap = (tokio::time::Instant::now() + Duration::from_millis(20)).min(end);
            tokio::time::sleep_until(until.map_or(nap, |u| u.min(nap))).await;
        }
        reports.push(report);
    }
    reports
}

/// Whether every object of the org is live and caught up with no work pending.
pub fn all_live(sync: &OrgSync) -> bool {
    sync.objects().iter().all(|o| {
        o.state.phase == sfpg_control::objects::Phase::Live
            && o.state.pending_field_backfill.is_empty()
    })
}
