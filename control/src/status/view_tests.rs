//! The view `sfpg.status` (V18) against a real PostgreSQL: the freshness lag from the
//! last caught-up poll or the stream's mark, the org's state and worst lag, `status::load`
//! reading the same values, and a read-only role that may read the view and nothing else
//! of the control schema.

use super::*;
use crate::streams::mark_current;
use sfpg_testkit::TestDatabase;

async fn migrated_with_objects() -> (TestDatabase, tokio_postgres::Client) {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO sfpg.orgs (name, schema_name, auth_flow, login_url, api_version, client_id,
                                     sealed_credentials, api_used, api_max, last_error, last_error_code)
             VALUES ('acme', 'acme', 'client_credentials', 'https://login.example', '62.0', 'id',
                     '\\x01', 1200, 15000, NULL, NULL);
             INSERT INTO sfpg.objects (org_name, object_name, table_name, phase, row_count,
                                       backfill_done, backfill_total, caught_up_at, newest_modstamp,
                                       last_error, last_error_code)
             VALUES ('acme', 'Account', 'account', 'live', 10, 10, 10,
                     now() - interval '3 seconds', now() - interval '400 days',
                     'GET /query answered 503', 'SERVER_UNAVAILABLE'),
                    ('acme', 'Contact', 'contact', 'backfilling', 400, 400, 1000, NULL, NULL,
                     NULL, NULL),
                    ('acme', 'Lead', 'lead', 'live', 5, 5, 5, now() - interval '600 seconds',
                     NULL, NULL, NULL);
             UPDATE sfpg.objects SET source = 'stream' WHERE object_name = 'Lead';",
        )
        .await
        .unwrap();
    (db, client)
}

fn close_to(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|v| (v - expected).abs() < 1.5)
}

#[tokio::test]
async fn the_view_measures_freshness_and_status_reads_it() {
    let (_db, client) = migrated_with_objects().await;
    let orgs = load(&client).await.unwrap();
    let acme = &orgs[0];
    let lag = |name: &str| {
        acme.objects
            .iter()
            .find(|o| o.object == name)
            .unwrap()
            .lag_seconds
    };
    // Polled 3 s ago, whatever the age of its newest record; never caught up yet; and a
    // streamed object whose last poll is 10 minutes old.
    assert!(close_to(lag("Account"), 3.0), "{acme:#?}");
    assert_eq!(lag("Contact"), None);
    assert!(close_to(lag("Lead"), 600.0), "{acme:#?}");
    assert!(close_to(acme.lag_seconds, 600.0), "{acme:#?}");
    assert_eq!(acme.state, "backfilling");
    let account = &acme.objects[0];
    assert_eq!(
        account.last_error_code.as_deref(),
        Some("SERVER_UNAVAILABLE")
    );
}

#[tokio::test]
async fn a_stream_marks_an_object_current_never_backwards_nor_twice_a_second() {
    let (_db, client) = migrated_with_objects().await;
    // The stream marks Lead current as of its last event or keepalive: never backwards,
    // and not rewritten within a second.
    let now = Utc::now();
    mark_current(
        &client,
        "acme",
        &["Lead".to_owned()],
        now - chrono::Duration::seconds(2),
    )
    .await
    .unwrap();
    mark_current(
        &client,
        "acme",
        &["Lead".to_owned()],
        now - chrono::Duration::seconds(30),
    )
    .await
    .unwrap();
    let orgs = load(&client).await.unwrap();
    let lead = orgs[0].objects.iter().find(|o| o.object == "Lead").unwrap();
    assert!(close_to(lead.lag_seconds, 2.0), "{lead:#?}");
    let through = lead_streamed_through(&client).await;
    assert_eq!(
        through.timestamp_micros(),
        (now - chrono::Duration::seconds(2)).timestamp_micros()
    );
    mark_current(
        &client,
        "acme",
        &["Lead".to_owned()],
        now - chrono::Duration::milliseconds(1500),
    )
    .await
    .unwrap();
    assert_eq!(lead_streamed_through(&client).await, through);
}

#[tokio::test]
async fn the_worker_is_the_lease_owner_while_its_lease_is_unexpired() {
    let (_db, client) = migrated_with_objects().await;
    // The worker: the lease's owner while its lease is unexpired (V17).
    assert_eq!(load(&client).await.unwrap()[0].lease_owner, None);
    client
        .batch_execute(
            "UPDATE sfpg.leases SET owner = 'host:42', expires_at = now() + interval '30 s'",
        )
        .await
        .unwrap();
    assert_eq!(
        load(&client).await.unwrap()[0].lease_owner.as_deref(),
        Some("host:42")
    );
    client
        .batch_execute("UPDATE sfpg.leases SET expires_at = now() - interval '1 s'")
        .await
        .unwrap();
    assert_eq!(load(&client).await.unwrap()[0].lease_owner, None);
}

#[tokio::test]
async fn the_org_state_is_derived_from_its_objects_stream_pause_and_error() {
    let (_db, client) = migrated_with_objects().await;
    // The org's states, as the view derives them.
    client
        .batch_execute("UPDATE sfpg.objects SET phase = 'live' WHERE object_name = 'Contact'")
        .await
        .unwrap();
    assert_eq!(load(&client).await.unwrap()[0].state, "polling");
    client
        .batch_execute("INSERT INTO sfpg.streams (org_name, state) VALUES ('acme', 'connected')")
        .await
        .unwrap();
    assert_eq!(load(&client).await.unwrap()[0].state, "streaming");
    client
        .batch_execute("UPDATE sfpg.orgs SET paused_reason = 'daily API budget'")
        .await
        .unwrap();
    assert_eq!(load(&client).await.unwrap()[0].state, "budget_exhausted");
    client
        .batch_execute(
            "UPDATE sfpg.orgs SET last_error = 'refused', last_error_code = 'invalid_grant'",
        )
        .await
        .unwrap();
    let acme = load(&client).await.unwrap().remove(0);
    assert_eq!(acme.state, "auth_error");
    assert_eq!(acme.last_error_code.as_deref(), Some("invalid_grant"));
}

async fn lead_streamed_through(client: &tokio_postgres::Client) -> DateTime<Utc> {
    client
        .query_one(
            "SELECT streamed_through FROM sfpg.objects WHERE object_name = 'Lead'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_read_only_role_reads_the_view_and_nothing_else() {
    let (_db, client) = migrated_with_objects().await;
    let role = format!("status_reader_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} NOLOGIN;
             GRANT SELECT ON sfpg.status TO {role}; SET ROLE {role}"
        ))
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT org_name, object_name, org_state, worker, stream_state, budget_used,
                    backfill_progress, lag_seconds, source, last_error_code
               FROM sfpg.status ORDER BY object_name",
            &[],
        )
        .await
        .unwrap();
    let objects: Vec<&str> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(objects, ["Account", "Contact", "Lead"]);
    assert_eq!(rows[1].get::<_, Option<f64>>(6), Some(0.4));
    assert_eq!(rows[0].get::<_, Option<f64>>(5), Some(0.08));
    assert_eq!(rows[0].get::<_, Option<&str>>(4), Some("down"));
    let refused = client
        .query("SELECT sealed_credentials FROM sfpg.orgs", &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    client.batch_execute("RESET ROLE").await.unwrap();
    // No column of the view holds a credential.
    let columns: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns
              WHERE table_schema = 'sfpg' AND table_name = 'status'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(columns.contains(&"lag_seconds".to_owned()), "{columns:?}");
    assert!(
        columns
            .iter()
            .all(|c| !c.contains("credential") && !c.contains("secret") && !c.contains("token")),
        "{columns:?}"
    );
    client
        .batch_execute(&format!(
            "REVOKE ALL ON sfpg.status FROM {role}; DROP ROLE {role}"
        ))
        .await
        .unwrap();
}

/// An object's rows are what its table holds, whoever wrote them (the proxy's clients write
/// rows the sync never counted), once PostgreSQL's statistics have them; until then, the
/// sync's own count.
#[tokio::test]
async fn rows_are_the_tables_whoever_wrote_them() {
    let (_db, client) = migrated_with_objects().await;
    let rows = |orgs: &[OrgStatus], name: &str| {
        orgs[0]
            .objects
            .iter()
            .find(|o| o.object == name)
            .unwrap()
            .rows
    };
    client
        .batch_execute("CREATE SCHEMA acme; CREATE TABLE acme.lead (id int)")
        .await
        .unwrap();
    // Nothing in the table's statistics yet: the sync's count.
    assert_eq!(rows(&load(&client).await.unwrap(), "Lead"), 5);
    client
        .batch_execute("INSERT INTO acme.lead SELECT generate_series(1, 1598)")
        .await
        .unwrap();
    // The statistics are sent when a session goes idle, at most once a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let orgs = load(&client).await.unwrap();
        if rows(&orgs, "Lead") == 1598 {
            assert_eq!(rows(&orgs, "Account"), 10, "no table: the sync's count");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{orgs:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
