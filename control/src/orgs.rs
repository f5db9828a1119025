//! Org records in `sfpg.orgs` (and the objects registered with them in `sfpg.objects`).
//! Credentials are sealed with the [`MasterKey`] before they reach the database and opened
//! only in memory, wrapped so they never print.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};

use crate::error::ControlError;
use crate::mapping::table_name;
use crate::master_key::MasterKey;

mod check;
mod listing;
mod settings;

pub use check::{valid_name, valid_object_name};
pub use listing::{OrgSummary, exists, login_url, mirroring, schema_of, summaries};
pub use settings::{ORG_CHANGED_CHANNEL, OrgSettings, listen_for_changes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFlow {
    Password,
    ClientCredentials,
    JwtBearer,
    RefreshToken,
}

impl AuthFlow {
    /// The spelling stored in `sfpg.orgs.auth_flow`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFlow::Password => "password",
            AuthFlow::ClientCredentials => "client_credentials",
            AuthFlow::JwtBearer => "jwt_bearer",
            AuthFlow::RefreshToken => "refresh_token",
        }
    }
}

impl FromStr for AuthFlow {
    type Err = ControlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "password" => AuthFlow::Password,
            "client_credentials" => AuthFlow::ClientCredentials,
            "jwt_bearer" => AuthFlow::JwtBearer,
            "refresh_token" => AuthFlow::RefreshToken,
            other => {
                return Err(ControlError::Corrupt(format!(
                    "unknown auth flow {other:?}"
                )));
            }
        })
    }
}

impl fmt::Display for AuthFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The secrets of an org's auth flow. `Debug` shows which are set, never their values.
#[derive(Default, Clone)]
pub struct OrgSecrets {
    pub client_secret: Option<SecretString>,
    pub password: Option<SecretString>,
    pub private_key_pem: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
}

impl fmt::Debug for OrgSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |s: &Option<SecretString>| if s.is_some() { "****" } else { "-" };
        f.debug_struct("OrgSecrets")
            .field("client_secret", &mask(&self.client_secret))
            .field("password", &mask(&self.password))
            .field("private_key_pem", &mask(&self.private_key_pem))
            .field("refresh_token", &mask(&self.refresh_token))
            .finish()
    }
}

/// The sealed form: plain strings that exist only between `serde_json` and the cipher.
#[derive(Serialize, Deserialize)]
struct SecretsOnDisk {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_pem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl OrgSecrets {
    fn seal(&self, org: &str, key: &MasterKey) -> Vec<u8> {
        let plain = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
        let on_disk = SecretsOnDisk {
            client_secret: plain(&self.client_secret),
            password: plain(&self.password),
            private_key_pem: plain(&self.private_key_pem),
            refresh_token: plain(&self.refresh_token),
        };
        // Serialising a struct of strings cannot fail.
        let json = serde_json::to_vec(&on_disk).unwrap_or_default();
        key.seal(org, &json)
    }

    fn open(org: &str, sealed: &[u8], key: &MasterKey) -> Result<OrgSecrets, ControlError> {
        let json = key.open(org, sealed)?;
        // Without the parser's error, which may quote a piece of a secret.
        let on_disk: SecretsOnDisk = serde_json::from_slice(&json)
            .map_err(|_| ControlError::Corrupt(format!("sealed credentials of org {org}")))?;
        let secret = |s: Option<String>| s.map(SecretString::from);
        Ok(OrgSecrets {
            client_secret: secret(on_disk.client_secret),
            password: secret(on_disk.password),
            private_key_pem: secret(on_disk.private_key_pem),
            refresh_token: secret(on_disk.refresh_token),
        })
    }
}

/// N requests per period: the org's background sync rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub period: Duration,
}

impl Default for RateLimit {
    /// Salesforce's default allocation is consumed slowly: 1 request every 3 s is about
    /// 29,000 a day.
    fn default() -> Self {
        RateLimit {
            requests: 1,
            period: Duration::from_secs(3),
        }
    }
}

/// What `sfpg org add` registers.
#[derive(Debug, Clone)]
pub struct NewOrg {
    pub name: String,
    pub schema_name: String,
    pub auth_flow: AuthFlow,
    pub login_url: String,
    pub instance_url: Option<String>,
    pub api_version: String,
    pub client_id: String,
    pub username: Option<String>,
    pub secrets: OrgSecrets,
    pub ca_cert_pem: Option<String>,
    pub batch_size: u32,
    /// Objects counting at least this many records are read through Bulk API 2.0 query
    /// jobs; `None`: never.
    pub bulk_threshold: Option<u64>,
    /// Object API names to mirror, e.g. `Account`, `Invoice__c`.
    pub objects: Vec<String>,
    /// The Pub/Sub API's endpoint; `None`: Salesforce's global one.
    pub pubsub_endpoint: Option<String>,
}

/// The bulk threshold of an org registered without one: Salesforce's own guidance puts
/// Bulk's break-even with REST at tens of thousands of records.
pub const DEFAULT_BULK_THRESHOLD: u64 = 50_000;

impl NewOrg {
    /// An org that logs in with the client-credentials flow (a connected app's id and
    /// secret), mirrored into a schema of its own name, at API 62.0 and 200 records a page.
    /// The other fields are set with struct update syntax.
    pub fn client_credentials(
        name: &str,
        login_url: &str,
        client_id: &str,
        client_secret: &str,
        objects: &[&str],
    ) -> NewOrg {
        NewOrg {
            name: name.to_owned(),
            schema_name: name.to_owned(),
            auth_flow: AuthFlow::ClientCredentials,
            login_url: login_url.to_owned(),
            instance_url: None,
            api_version: "62.0".to_owned(),
            client_id: client_id.to_owned(),
            username: None,
            secrets: OrgSecrets {
                client_secret: Some(SecretString::from(client_secret.to_owned())),
                ..OrgSecrets::default()
            },
            ca_cert_pem: None,
            batch_size: 200,
            bulk_threshold: Some(DEFAULT_BULK_THRESHOLD),
            objects: objects.iter().map(|o| (*o).to_owned()).collect(),
            pubsub_endpoint: None,
        }
    }

    /// The org as it will be stored, with the default rate limit and budget: what a
    /// credentials check before registration logs in with.
    pub fn to_org(&self) -> Org {
        Org {
            name: self.name.clone(),
            schema_name: self.schema_name.clone(),
            auth_flow: self.auth_flow,
            login_url: self.login_url.clone(),
            instance_url: self.instance_url.clone(),
            api_version: self.api_version.clone(),
            client_id: self.client_id.clone(),
            username: self.username.clone(),
            secrets: self.secrets.clone(),
            ca_cert_pem: self.ca_cert_pem.clone(),
            batch_size: self.batch_size,
            bulk_threshold: self.bulk_threshold,
            rate_limit: RateLimit::default(),
            max_daily_share: 0.8,
            enabled: true,
            org_id: None,
        }
    }
}

/// An org as stored, with its credentials opened.
#[derive(Debug, Clone)]
pub struct Org {
    pub name: String,
    pub schema_name: String,
    pub auth_flow: AuthFlow,
    pub login_url: String,
    pub instance_url: Option<String>,
    pub api_version: String,
    pub client_id: String,
    pub username: Option<String>,
    pub secrets: OrgSecrets,
    pub ca_cert_pem: Option<String>,
    pub batch_size: u32,
    pub bulk_threshold: Option<u64>,
    pub rate_limit: RateLimit,
    pub max_daily_share: f32,
    pub enabled: bool,
    pub org_id: Option<String>,
}

/// Registers an org and its objects in one transaction, after [`NewOrg::check`].
pub async fn insert(
    client: &mut tokio_postgres::Client,
    new: &NewOrg,
    key: &MasterKey,
) -> Result<(), ControlError> {
    new.check()?;
    let tx = client.transaction().await?;
    if exists(&tx, &new.name).await? {
        return Err(ControlError::Exists(new.name.clone()));
    }
    if let Some(row) = tx
        .query_opt(
            "SELECT name FROM sfpg.orgs WHERE schema_name = $1",
            &[&new.schema_name],
        )
        .await?
    {
        return Err(ControlError::SchemaInUse {
            schema: new.schema_name.clone(),
            org: row.get(0),
        });
    }
    // A schema sfpg did not create may hold someone's data: never mirror into it.
    if tx
        .query_opt(
            "SELECT 1 FROM pg_namespace WHERE nspname = $1",
            &[&new.schema_name],
        )
        .await?
        .is_some()
    {
        return Err(ControlError::SchemaTaken(new.schema_name.clone()));
    }
    let batch_size =
        i32::try_from(new.batch_size).map_err(|_| ControlError::BatchSize(new.batch_size))?;
    let bulk_threshold = new
        .bulk_threshold
        .map(|t| i64::try_from(t).ok().filter(|t| *t > 0))
        .map(|t| t.ok_or(ControlError::BadBulkThreshold))
        .transpose()?;
    tx.execute(
        "INSERT INTO sfpg.orgs (name, schema_name, auth_flow, login_url, instance_url, api_version,
                                client_id, username, sealed_credentials, ca_cert_pem, batch_size,
                                bulk_threshold, pubsub_endpoint)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &new.name,
            &new.schema_name,
            &new.auth_flow.as_str(),
            &new.login_url,
            &new.instance_url,
            &new.api_version,
            &new.client_id,
            &new.username,
            &new.secrets.seal(&new.name, key),
            &new.ca_cert_pem,
            &batch_size,
            &bulk_threshold,
            &new.pubsub_endpoint
                .as_deref()
                .unwrap_or(crate::streams::DEFAULT_PUBSUB_ENDPOINT),
        ],
    )
    .await?;
    for object in &new.objects {
        tx.execute(
            "INSERT INTO sfpg.objects (org_name, object_name, table_name) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&new.name, object, &table_name(object)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Replaces the org's stored refresh token with `refresh_token` (one Salesforce rotated),
/// leaving its other secrets as they are. The row is locked for the change, so that two
/// processes saving at once do not undo each other's other edits.
pub async fn save_refresh_token(
    client: &mut tokio_postgres::Client,
    name: &str,
    refresh_token: &SecretString,
    key: &MasterKey,
) -> Result<(), ControlError> {
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT sealed_credentials FROM sfpg.orgs WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(name.to_owned()))?;
    let mut secrets = OrgSecrets::open(name, &row.get::<_, Vec<u8>>(0), key)?;
    secrets.refresh_token = Some(SecretString::from(refresh_token.expose_secret().to_owned()));
    tx.execute(
        "UPDATE sfpg.orgs SET sealed_credentials = $2, updated_at = now() WHERE name = $1",
        &[&name, &secrets.seal(name, key)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

const ORG_COLUMNS: &str = "name, schema_name, auth_flow, login_url, instance_url, api_version, \
     client_id, username, sealed_credentials, ca_cert_pem, batch_size, rate_requests, \
     rate_period_ms, max_daily_share, enabled, org_id, bulk_threshold";

/// Records who the org turned out to be when sfpg logged in: its 18-character org id and
/// the instance URL Salesforce handed back.
pub async fn record_identity(
    client: &impl GenericClient,
    name: &str,
    org_id: Option<&str>,
    instance_url: &str,
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE sfpg.orgs SET org_id = COALESCE($2, org_id), instance_url = $3, updated_at = now()
              WHERE name = $1",
            &[&name, &org_id, &instance_url],
        )
        .await?;
    Ok(())
}

/// One org with its credentials opened.
pub async fn load(
    client: &impl GenericClient,
    name: &str,
    key: &MasterKey,
) -> Result<Org, ControlError> {
    let row = client
        .query_opt(
            &format!("SELECT {ORG_COLUMNS} FROM sfpg.orgs WHERE name = $1"),
            &[&name],
        )
        .await?
        .ok_or_else(|| ControlError::NotFound(name.to_owned()))?;
    from_row(&row, key)
}

/// Every org, by name.
pub async fn list(client: &impl GenericClient, key: &MasterKey) -> Result<Vec<Org>, ControlError> {
    let rows = client
        .query(
            &format!("SELECT {ORG_COLUMNS} FROM sfpg.orgs ORDER BY name"),
            &[],
        )
        .await?;
    rows.iter().map(|row| from_row(row, key)).collect()
}

/// The org's enabled objects, by API name.
pub async fn enabled_objects(
    client: &impl GenericClient,
    org: &str,
) -> Result<Vec<String>, ControlError> {
    let rows = client
        .query(
            "SELECT object_name FROM sfpg.objects WHERE org_name = $1 AND enabled ORDER BY object_name",
            &[&org],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn from_row(row: &Row, key: &MasterKey) -> Result<Org, ControlError> {
    let name: String = row.get("name");
    let sealed: Vec<u8> = row.get("sealed_credentials");
    let secrets = OrgSecrets::open(&name, &sealed, key)?;
    let batch_size: i32 = row.get("batch_size");
    let rate_requests: i32 = row.get("rate_requests");
    let rate_period_ms: i64 = row.get("rate_period_ms");
    let corrupt = |what: &str| ControlError::Corrupt(format!("{what} of org {name}"));
    Ok(Org {
        auth_flow: row.get::<_, String>("auth_flow").parse()?,
        schema_name: row.get("schema_name"),
        login_url: row.get("login_url"),
        instance_url: row.get("instance_url"),
        api_version: row.get("api_version"),
        client_id: row.get("client_id"),
        username: row.get("username"),
        secrets,
        ca_cert_pem: row.get("ca_cert_pem"),
        batch_size: u32::try_from(batch_size).map_err(|_| corrupt("batch size"))?,
        bulk_threshold: row
            .get::<_, Option<i64>>("bulk_threshold")
            .map(|t| u64::try_from(t).map_err(|_| corrupt("bulk threshold")))
            .transpose()?,
        rate_limit: RateLimit {
            requests: u32::try_from(rate_requests).map_err(|_| corrupt("rate limit"))?,
            period: Duration::from_millis(
                u64::try_from(rate_period_ms).map_err(|_| corrupt("rate period"))?,
            ),
        },
        max_daily_share: row.get("max_daily_share"),
        enabled: row.get("enabled"),
        org_id: row.get("org_id"),
        name,
    })
}

#[cfg(test)]
mod tests;
