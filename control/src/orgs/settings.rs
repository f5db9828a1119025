//! What the sync reads and records of an org's row in `sfpg.orgs` while it runs: its
//! settings ([`OrgSettings`]), why polling is paused, the API usage last seen, and an
//! org-wide error. Who holds the org is its lease's ([`crate::leases`]).

use std::time::Duration;

use sfpg_salesforce::{ApiUsage, Rate};
use tokio_postgres::GenericClient;

use crate::error::ControlError;
use crate::streams::CdcTransport;

/// What the sync reads of an `sfpg.orgs` row.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgSettings {
    pub name: String,
    /// The Postgres schema the org's tables live in.
    pub schema: String,
    pub enabled: bool,
    /// Records per page (200–2,000).
    pub batch_size: u32,
    pub rate: Rate,
    /// The share of the daily API allocation background polling may use (0–1].
    pub max_daily_share: f64,
    pub paused_reason: Option<String>,
    /// Objects counting at least this many records are read through Bulk API 2.0 query
    /// jobs; `None`: never.
    pub bulk_threshold: Option<u64>,
    /// Whether the org streams the changes of the objects it selects for Change Data
    /// Capture (`sfpg org set-cdc`).
    pub cdc_enabled: bool,
    /// The stream's transport (`sfpg org set-cdc NAME on --transport`).
    pub cdc_transport: CdcTransport,
    /// The Pub/Sub API's endpoint (`host:port` or a URL).
    pub pubsub_endpoint: String,
    /// A digest of the sealed credentials: they changed when it did (`org
    /// set-credentials`), and the stream logs in again.
    pub credentials_digest: Option<String>,
}

impl OrgSettings {
    /// The org's row, or `None` when there is none.
    pub async fn load(
        client: &impl GenericClient,
        org: &str,
    ) -> Result<Option<Self>, ControlError> {
        let Some(row) = client
            .query_opt(
                "SELECT name, schema_name, enabled, batch_size, rate_requests, rate_period_ms,
                        max_daily_share, paused_reason, bulk_threshold, cdc_enabled,
                        cdc_transport, pubsub_endpoint,
                        pg_catalog.encode(pg_catalog.sha256(sealed_credentials), 'hex')
                   FROM sfpg.orgs WHERE name = $1",
                &[&org],
            )
            .await?
        else {
            return Ok(None);
        };
        let batch_size: i32 = row.try_get(3)?;
        let requests: i32 = row.try_get(4)?;
        let period_ms: i64 = row.try_get(5)?;
        let share: f32 = row.try_get(6)?;
        let bulk_threshold: Option<i64> = row.try_get(8)?;
        let cdc_transport: String = row.try_get(10)?;
        let invalid =
            |what: &str| ControlError::Corrupt(format!("sfpg.orgs {org}: invalid {what}"));
        let rate = Rate::new(
            u32::try_from(requests).map_err(|_| invalid("rate_requests"))?,
            Duration::from_millis(u64::try_from(period_ms).map_err(|_| invalid("rate_period_ms"))?),
        )
        .map_err(|_| invalid("rate"))?;
        Ok(Some(Self {
            name: row.try_get(0)?,
            schema: row.try_get(1)?,
            enabled: row.try_get(2)?,
            batch_size: u32::try_from(batch_size).map_err(|_| invalid("batch_size"))?,
            rate,
            max_daily_share: f64::from(share),
            paused_reason: row.try_get(7)?,
            bulk_threshold: bulk_threshold
                .map(|t| u64::try_from(t).map_err(|_| invalid("bulk_threshold")))
                .transpose()?,
            cdc_enabled: row.try_get(9)?,
            cdc_transport: cdc_transport
                .parse()
                .map_err(|_| invalid("cdc_transport"))?,
            pubsub_endpoint: row.try_get(11)?,
            credentials_digest: row.try_get(12)?,
        }))
    }

    /// The names of the enabled orgs.
    pub async fn enabled_names(client: &impl GenericClient) -> Result<Vec<String>, ControlError> {
        let rows = client
            .query(
                "SELECT name FROM sfpg.orgs WHERE enabled ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Records (or clears) why the org's background polling is paused.
    pub async fn set_paused(
        client: &impl GenericClient,
        org: &str,
        reason: Option<&str>,
    ) -> Result<(), ControlError> {
        client
            .execute(
                "UPDATE sfpg.orgs SET paused_reason = $2, updated_at = now() WHERE name = $1",
                &[&org, &reason],
            )
            .await?;
        Ok(())
    }

    /// Records the API usage Salesforce last reported.
    pub async fn record_usage(
        client: &impl GenericClient,
        org: &str,
        usage: &ApiUsage,
    ) -> Result<(), ControlError> {
        let used = i32::try_from(usage.api.used).unwrap_or(i32::MAX);
        let max = i32::try_from(usage.api.max).unwrap_or(i32::MAX);
        client
            .execute(
                "UPDATE sfpg.orgs SET api_used = $2, api_max = $3, api_seen_at = now() WHERE name = $1",
                &[&org, &used, &max],
            )
            .await?;
        Ok(())
    }

    /// Records an org-wide failure (credentials refused) with Salesforce's code for it, or
    /// clears it (`None`: the org's sync works again).
    pub async fn record_error(
        client: &impl GenericClient,
        org: &str,
        error: Option<&str>,
        code: Option<&str>,
    ) -> Result<(), ControlError> {
        client
            .execute(
                "UPDATE sfpg.orgs SET last_error = $2, last_error_code = $3,
                        last_error_at = CASE WHEN $2::text IS NULL THEN last_error_at ELSE now() END
                  WHERE name = $1 AND (last_error IS DISTINCT FROM $2 OR $2 IS NOT NULL)",
                &[&org, &error, &code],
            )
            .await?;
        Ok(())
    }
}

/// The channel every change to `sfpg.orgs` and `sfpg.objects` is announced on, with the
/// org's name as the payload (the V2 triggers, and [`crate::admin::resync_object`]).
pub const ORG_CHANGED_CHANNEL: &str = "sfpg_org_changed";

/// Subscribes `client`'s session to [`ORG_CHANGED_CHANNEL`]; the notifications arrive
/// through its connection.
pub async fn listen_for_changes(client: &impl GenericClient) -> Result<(), ControlError> {
    client
        .batch_execute(&format!("LISTEN {ORG_CHANGED_CHANNEL}"))
        .await?;
    Ok(())
}
