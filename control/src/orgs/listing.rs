//! Looking orgs up in `sfpg.orgs` without opening their credentials: whether one exists,
//! which org a schema mirrors, and the list `sfpg org list` prints.

use std::time::Duration;

use tokio_postgres::GenericClient;

use crate::error::ControlError;
use crate::orgs::{AuthFlow, RateLimit};

/// Whether an org named `name` is registered: the one check that refuses a duplicate, at
/// `sfpg org add` before it spends a login and again when the org is stored.
pub async fn exists(client: &impl GenericClient, name: &str) -> Result<bool, ControlError> {
    Ok(client
        .query_opt("SELECT 1 FROM sfpg.orgs WHERE name = $1", &[&name])
        .await?
        .is_some())
}

/// The name of the org whose mirror is `schema`, if one is.
pub async fn mirroring(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Option<String>, ControlError> {
    text_of(
        client,
        "SELECT name FROM sfpg.orgs WHERE schema_name = $1",
        schema,
    )
    .await
}

/// The schema org `name` is mirrored into, if the org exists.
pub async fn schema_of(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<String>, ControlError> {
    text_of(
        client,
        "SELECT schema_name FROM sfpg.orgs WHERE name = $1",
        name,
    )
    .await
}

/// Where org `name` logs in, if the org exists.
pub async fn login_url(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<String>, ControlError> {
    text_of(
        client,
        "SELECT login_url FROM sfpg.orgs WHERE name = $1",
        name,
    )
    .await
}

/// The one text column `sql` selects for `key`, if a row has it.
async fn text_of(
    client: &impl GenericClient,
    sql: &str,
    key: &str,
) -> Result<Option<String>, ControlError> {
    Ok(client
        .query_opt(sql, &[&key])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

/// An org as `sfpg org list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgSummary {
    pub name: String,
    pub schema: String,
    pub auth_flow: AuthFlow,
    pub rate_limit: RateLimit,
    pub max_daily_share: f32,
    pub enabled: bool,
    /// How many of its objects are enabled.
    pub objects: i64,
}

/// Every org, by name.
pub async fn summaries(client: &impl GenericClient) -> Result<Vec<OrgSummary>, ControlError> {
    let rows = client
        .query(
            "SELECT o.name, o.schema_name, o.auth_flow, o.rate_requests, o.rate_period_ms,
                    o.max_daily_share, o.enabled,
                    (SELECT count(*) FROM sfpg.objects b WHERE b.org_name = o.name AND b.enabled)
               FROM sfpg.orgs o ORDER BY o.name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get(0)?;
            let requests: i32 = row.try_get(3)?;
            let period_ms: i64 = row.try_get(4)?;
            let corrupt = |what: &str| ControlError::Corrupt(format!("{what} of org {name}"));
            Ok(OrgSummary {
                schema: row.try_get(1)?,
                auth_flow: row.try_get::<_, String>(2)?.parse()?,
                rate_limit: RateLimit {
                    requests: u32::try_from(requests).map_err(|_| corrupt("rate limit"))?,
                    period: Duration::from_millis(
                        u64::try_from(period_ms).map_err(|_| corrupt("rate period"))?,
                    ),
                },
                max_daily_share: row.try_get(5)?,
                enabled: row.try_get(6)?,
                objects: row.try_get(7)?,
                name,
            })
        })
        .collect()
}
