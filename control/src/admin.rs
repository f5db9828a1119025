//! Changes an operator makes to a registered org while sfpg runs: rate limit, daily budget,
//! which objects are mirrored, a fresh backfill, removal. Each is one statement or one
//! transaction; the V2 triggers NOTIFY `sfpg_org_changed`, so a running sync picks the
//! change up at once.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};

use crate::error::ControlError;
use crate::mapping::table_name;
use crate::mirror::quote_ident;
use crate::orgs::{ORG_CHANGED_CHANNEL, RateLimit, valid_object_name};

async fn require_org(client: &impl GenericClient, org: &str) -> Result<String, ControlError> {
    client
        .query_opt("SELECT schema_name FROM sfpg.orgs WHERE name = $1", &[&org])
        .await?
        .map(|row| row.get(0))
        .ok_or_else(|| ControlError::NotFound(org.to_owned()))
}

pub async fn set_rate_limit(
    client: &impl GenericClient,
    org: &str,
    rate: RateLimit,
) -> Result<(), ControlError> {
    let requests = i32::try_from(rate.requests)
        .ok()
        .filter(|r| *r > 0)
        .ok_or(ControlError::BadRate)?;
    let period_ms = i64::try_from(rate.period.as_millis())
        .ok()
        .filter(|p| *p > 0)
        .ok_or(ControlError::BadRate)?;
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET rate_requests = $2, rate_period_ms = $3, updated_at = now()
          WHERE name = $1",
        &[&requests, &period_ms],
    )
    .await
}

/// Runs `sql`, an `UPDATE sfpg.orgs … WHERE name = $1`, with the org's name and `params`
/// ($2 on); an org that does not exist is [`ControlError::NotFound`].
async fn update_org(
    client: &impl GenericClient,
    org: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), ControlError> {
    let mut all: Vec<&(dyn ToSql + Sync)> = vec![&org];
    all.extend_from_slice(params);
    if client.execute(sql, &all).await? == 0 {
        return Err(ControlError::NotFound(org.to_owned()));
    }
    Ok(())
}

/// Records per query page while backfilling (200 to 2,000).
pub async fn set_batch_size(
    client: &impl GenericClient,
    org: &str,
    batch_size: u32,
) -> Result<(), ControlError> {
    let batch = i32::try_from(batch_size)
        .ok()
        .filter(|b| (200..=2000).contains(b))
        .ok_or(ControlError::BatchSize(batch_size))?;
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET batch_size = $2, updated_at = now() WHERE name = $1",
        &[&batch],
    )
    .await
}

/// The share (0 < share <= 1) of the org's daily API allocation background sync may use.
pub async fn set_max_daily_share(
    client: &impl GenericClient,
    org: &str,
    share: f32,
) -> Result<(), ControlError> {
    if !(share > 0.0 && share <= 1.0) {
        return Err(ControlError::BadShare);
    }
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET max_daily_share = $2, updated_at = now() WHERE name = $1",
        &[&share],
    )
    .await
}

/// The org's bulk threshold: objects counting at least this many records are backfilled
/// through a Bulk API 2.0 query job (and larger backlogs, reconciliations and formula
/// refreshes read through one); `None` turns Bulk off for the org.
pub async fn set_bulk_threshold(
    client: &impl GenericClient,
    org: &str,
    threshold: Option<u64>,
) -> Result<(), ControlError> {
    let threshold = threshold
        .map(|t| i64::try_from(t).ok().filter(|t| *t > 0))
        .map(|t| t.ok_or(ControlError::BadBulkThreshold))
        .transpose()?;
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET bulk_threshold = $2, updated_at = now() WHERE name = $1",
        &[&threshold],
    )
    .await
}

/// Turns the org's Change Data Capture stream on or off. On (the default), the objects
/// the org selects for CDC stream and poll only at the safety cadence; off, every object
/// polls. A running sync learns of it at once (the `orgs_changed` trigger).
pub async fn set_cdc_enabled(
    client: &impl GenericClient,
    org: &str,
    enabled: bool,
) -> Result<(), ControlError> {
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET cdc_enabled = $2, updated_at = now() WHERE name = $1",
        &[&enabled],
    )
    .await
}

/// `sfpg org set-cdc`: turns the org's stream on or off and, when given, sets its transport
/// and Pub/Sub endpoint, in one update, so a running sync reloads once.
pub async fn set_cdc(
    client: &impl GenericClient,
    org: &str,
    enabled: bool,
    transport: Option<crate::streams::CdcTransport>,
    pubsub_endpoint: Option<&str>,
) -> Result<(), ControlError> {
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET cdc_enabled = $2, cdc_transport = coalesce($3, cdc_transport),
                pubsub_endpoint = coalesce($4, pubsub_endpoint), updated_at = now()
          WHERE name = $1",
        &[&enabled, &transport.map(|t| t.as_str()), &pubsub_endpoint],
    )
    .await
}

/// Sets the transport of the org's Change Data Capture stream; a running sync subscribes
/// again through it at once (the `orgs_changed` trigger).
pub async fn set_cdc_transport(
    client: &impl GenericClient,
    org: &str,
    transport: crate::streams::CdcTransport,
) -> Result<(), ControlError> {
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET cdc_transport = $2, updated_at = now() WHERE name = $1",
        &[&transport.as_str()],
    )
    .await
}

/// Sets the org's Pub/Sub API endpoint (`host:port`, or an `https://`/`http://` URL).
pub async fn set_pubsub_endpoint(
    client: &impl GenericClient,
    org: &str,
    endpoint: &str,
) -> Result<(), ControlError> {
    update_org(
        client,
        org,
        "UPDATE sfpg.orgs SET pubsub_endpoint = $2, updated_at = now() WHERE name = $1",
        &[&endpoint],
    )
    .await
}

/// Enables objects (registering them if new) or disables them. A disabled object's table
/// stays; it is no longer synced. A name that cannot be an object's is refused before any
/// change; whether the org has the object is for the caller to ask the org.
pub async fn set_objects_enabled(
    client: &mut Client,
    org: &str,
    objects: &[String],
    enabled: bool,
) -> Result<(), ControlError> {
    if enabled && let Some(bad) = objects.iter().find(|o| !valid_object_name(o)) {
        return Err(ControlError::InvalidObjectName(bad.clone()));
    }
    let tx = client.transaction().await?;
    require_org(&tx, org).await?;
    for object in objects {
        if enabled {
            tx.execute(
                "INSERT INTO sfpg.objects (org_name, object_name, table_name) VALUES ($1, $2, $3)
                 ON CONFLICT (org_name, object_name)
                 DO UPDATE SET enabled = true, updated_at = now()",
                &[&org, object, &table_name(object)],
            )
            .await?;
        } else {
            let changed = tx
                .execute(
                    "UPDATE sfpg.objects SET enabled = false, updated_at = now()
                      WHERE org_name = $1 AND lower(object_name) = lower($2)",
                    &[&org, object],
                )
                .await?;
            if changed == 0 {
                return Err(ControlError::UnknownObject {
                    org: org.to_owned(),
                    object: object.clone(),
                });
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Starts the object over: its checkpoint and cursor are cleared, so the sync describes it
/// again and backfills it from the first Id into the existing table (upserting by `sfid`).
pub async fn resync_object(
    client: &impl GenericClient,
    org: &str,
    object: &str,
) -> Result<(), ControlError> {
    require_org(client, org).await?;
    let changed = client
        .execute(
            "UPDATE sfpg.objects
                SET phase = 'describing', paused_reason = NULL, describe_modified_at = NULL,
                    backfill_snapshot = NULL, backfill_last_id = NULL, backfill_done = 0,
                    backfill_total = NULL, cursor_modstamp = NULL, cursor_id = NULL,
                    pending_field_backfill = '{}', locked_ids = '{}', last_error = NULL,
                    last_error_code = NULL, last_error_at = NULL, caught_up_at = NULL,
                    streamed_through = NULL, bulk_purpose = NULL, bulk_job_id = NULL,
                    bulk_locator = NULL, bulk_snapshot = NULL, bulk_processed = NULL,
                    bulk_read = 0, bulk_merge = false,
                    enabled = true, generation = generation + 1, updated_at = now()
              WHERE org_name = $1 AND lower(object_name) = lower($2)",
            &[&org, &object],
        )
        .await?;
    if changed == 0 {
        return Err(ControlError::UnknownObject {
            org: org.to_owned(),
            object: object.to_owned(),
        });
    }
    client
        .execute("SELECT pg_notify($1, $2)", &[&ORG_CHANGED_CHANNEL, &org])
        .await?;
    Ok(())
}

/// Removes the org, its sync state and the bulk refusals kept for its clients (a later org
/// of the same name must not show them); with `drop_schema`, its mirrored tables too.
pub async fn remove_org(
    client: &mut Client,
    org: &str,
    drop_schema: bool,
) -> Result<(), ControlError> {
    let tx = client.transaction().await?;
    let schema = require_org(&tx, org).await?;
    tx.execute("DELETE FROM sfpg.orgs WHERE name = $1", &[&org])
        .await?;
    tx.execute(
        "DELETE FROM sfpg.write_failures WHERE org_name = $1",
        &[&org],
    )
    .await?;
    if drop_schema {
        tx.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(&schema)
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::MasterKey;
    use crate::orgs::{self, NewOrg};
    use sfpg_testkit::TestDatabase;

    async fn with_org() -> (TestDatabase, Client, MasterKey) {
        let db = TestDatabase::create().await;
        let mut client = db.connect().await;
        crate::apply_control_schema(&mut client).await.unwrap();
        let key = MasterKey::generate();
        let new = NewOrg::client_credentials(
            "acme",
            "https://acme.my.salesforce.com",
            "id",
            "secret",
            &["Account"],
        );
        orgs::insert(&mut client, &new, &key).await.unwrap();
        (db, client, key)
    }

    /// A connection LISTENing on `sfpg_org_changed`, and the payloads it receives.
    async fn listen(db: &TestDatabase) -> (Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (client, mut connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
                if let tokio_postgres::AsyncMessage::Notification(n) = message {
                    let _ = tx.send(n.payload().to_owned());
                }
            }
        });
        client
            .batch_execute("LISTEN sfpg_org_changed")
            .await
            .unwrap();
        (client, rx)
    }

    async fn next_notification(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a notification within 5 s")
            .unwrap()
    }

    #[tokio::test]
    async fn rate_and_budget_changes_are_stored_and_announced() {
        let (db, client, key) = with_org().await;
        let (_listener, mut notifications) = listen(&db).await;

        let rate = RateLimit {
            requests: 5,
            period: Duration::from_secs(1),
        };
        set_rate_limit(&client, "acme", rate).await.unwrap();
        assert_eq!(next_notification(&mut notifications).await, "acme");
        set_max_daily_share(&client, "acme", 0.5).await.unwrap();
        assert_eq!(next_notification(&mut notifications).await, "acme");
        let org = orgs::load(&client, "acme", &key).await.unwrap();
        assert_eq!(org.rate_limit, rate);
        assert_eq!(org.max_daily_share, 0.5);

        let zero = RateLimit {
            requests: 0,
            period: Duration::from_secs(1),
        };
        assert!(matches!(
            set_rate_limit(&client, "acme", zero).await,
            Err(ControlError::BadRate)
        ));
        assert!(matches!(
            set_max_daily_share(&client, "acme", 1.5).await,
            Err(ControlError::BadShare)
        ));
        assert!(matches!(
            set_rate_limit(&client, "nope", rate).await,
            Err(ControlError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn the_bulk_threshold_is_stored_announced_and_turned_off() {
        let (db, client, key) = with_org().await;
        let org = orgs::load(&client, "acme", &key).await.unwrap();
        assert_eq!(org.bulk_threshold, Some(orgs::DEFAULT_BULK_THRESHOLD));
        let (_listener, mut notifications) = listen(&db).await;

        set_bulk_threshold(&client, "acme", Some(1_000))
            .await
            .unwrap();
        assert_eq!(next_notification(&mut notifications).await, "acme");
        let settings = orgs::OrgSettings::load(&client, "acme")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(settings.bulk_threshold, Some(1_000));
        set_bulk_threshold(&client, "acme", None).await.unwrap();
        assert_eq!(next_notification(&mut notifications).await, "acme");
        let org = orgs::load(&client, "acme", &key).await.unwrap();
        assert_eq!(org.bulk_threshold, None);

        assert!(matches!(
            set_bulk_threshold(&client, "acme", Some(0)).await,
            Err(ControlError::BadBulkThreshold)
        ));
        assert!(matches!(
            set_bulk_threshold(&client, "acme", Some(u64::MAX)).await,
            Err(ControlError::BadBulkThreshold)
        ));
        assert!(matches!(
            set_bulk_threshold(&client, "nope", Some(5)).await,
            Err(ControlError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn objects_are_enabled_disabled_and_resynced() {
        let (db, mut client, _key) = with_org().await;
        set_objects_enabled(&mut client, "acme", &["Contact".to_owned()], true)
            .await
            .unwrap();
        set_objects_enabled(&mut client, "acme", &["account".to_owned()], false)
            .await
            .unwrap();
        let rows: Vec<(String, bool)> = client
            .query(
                "SELECT object_name, enabled FROM sfpg.objects ORDER BY object_name",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            rows,
            [("Account".to_owned(), false), ("Contact".to_owned(), true)]
        );
        assert!(matches!(
            set_objects_enabled(&mut client, "acme", &["Lead".to_owned()], false).await,
            Err(ControlError::UnknownObject { .. })
        ));
        let names = ["Case".to_owned(), "Lead; DROP TABLE x".to_owned()];
        assert!(matches!(
            set_objects_enabled(&mut client, "acme", &names, true).await,
            Err(ControlError::InvalidObjectName(name)) if name == names[1]
        ));

        client
            .batch_execute(
                "UPDATE sfpg.objects SET phase = 'live', backfill_last_id = '001000000000001AAA',
                        cursor_modstamp = now() WHERE object_name = 'Contact'",
            )
            .await
            .unwrap();
        let (_listener, mut notifications) = listen(&db).await;
        resync_object(&client, "acme", "contact").await.unwrap();
        assert_eq!(next_notification(&mut notifications).await, "acme");
        let row = client
            .query_one(
                "SELECT phase, backfill_last_id, cursor_modstamp IS NULL FROM sfpg.objects
                  WHERE object_name = 'Contact'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "describing");
        assert_eq!(row.get::<_, Option<String>>(1), None);
        assert!(row.get::<_, bool>(2));
    }

    #[tokio::test]
    async fn remove_drops_the_schema_only_when_asked() {
        let (_db, mut client, _key) = with_org().await;
        client
            .batch_execute(
                "CREATE SCHEMA acme; CREATE TABLE acme.account (id int);
                 INSERT INTO sfpg.write_failures (role_name, txid, org_name, schema_name,
                        table_name, row_id, operation, error_code, message)
                 VALUES (current_user, '7', 'acme', 'acme', 'account', 1, 'create', 'X', 'x'),
                        (current_user, '8', 'globex', 'globex', 'account', 1, 'create', 'X', 'x')",
            )
            .await
            .unwrap();
        remove_org(&mut client, "acme", false).await.unwrap();
        let failures: Vec<String> = client
            .query("SELECT org_name FROM sfpg.write_failures", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(failures, ["globex"], "the org's refusals go with it");
        let schema_left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'acme'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(schema_left, 1);
        assert!(matches!(
            remove_org(&mut client, "acme", true).await,
            Err(ControlError::NotFound(_))
        ));
        let objects: i64 = client
            .query_one("SELECT count(*) FROM sfpg.objects", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(objects, 0);
    }
}
