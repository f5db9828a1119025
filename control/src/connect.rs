//! From a stored org to a Salesforce client: the one place that turns `sfpg.orgs` settings
//! and opened credentials into the `sfpg-salesforce` configuration, so the CLI, the sync
//! and the proxy all log in the same way; and the per-org rate limiters that the sync and
//! the proxy of one process share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sfpg_salesforce::{
    ApiVersion, Client, ClientCredentials, Config, Credentials, JwtBearer, Password, Rate,
    RateLimiter, RefreshToken, RefreshTokenStore, StoreError,
};

use crate::master_key::MasterKey;
use crate::orgs::{self, AuthFlow, Org};

/// The client configuration of `org`: login URL, API version, and its CA certificate.
pub fn config(org: &Org) -> Result<Config, sfpg_salesforce::Error> {
    let mut config =
        Config::new(&org.login_url)?.with_api_version(org.api_version.parse::<ApiVersion>()?);
    if let Some(pem) = &org.ca_cert_pem {
        config = config.with_ca_certificates_pem(pem.as_bytes().to_vec());
    }
    Ok(config)
}

/// The credentials of `org`'s auth flow.
pub fn credentials(org: &Org) -> Result<Credentials, sfpg_salesforce::Error> {
    let missing = |what: &str| {
        sfpg_salesforce::Error::Config(format!(
            "org {} uses the {} flow but has no {what} stored",
            org.name, org.auth_flow
        ))
    };
    let secret = |s: &Option<SecretString>, what: &str| {
        s.as_ref()
            .map(|s| SecretString::from(s.expose_secret().to_owned()))
            .ok_or_else(|| missing(what))
    };
    let username = || org.username.clone().ok_or_else(|| missing("username"));
    Ok(match org.auth_flow {
        AuthFlow::Password => Password::new(
            org.client_id.clone(),
            secret(&org.secrets.client_secret, "client secret")?,
            username()?,
            secret(&org.secrets.password, "password")?,
        )
        .into(),
        AuthFlow::ClientCredentials => ClientCredentials::new(
            org.client_id.clone(),
            secret(&org.secrets.client_secret, "client secret")?,
        )
        .into(),
        AuthFlow::JwtBearer => JwtBearer::new(
            org.client_id.clone(),
            username()?,
            secret(&org.secrets.private_key_pem, "private key")?,
        )?
        .into(),
        AuthFlow::RefreshToken => {
            let flow = RefreshToken::new(
                org.client_id.clone(),
                secret(&org.secrets.refresh_token, "refresh token")?,
            );
            match &org.secrets.client_secret {
                Some(client_secret) => flow
                    .with_client_secret(SecretString::from(
                        client_secret.expose_secret().to_owned(),
                    ))
                    .into(),
                None => flow.into(),
            }
        }
    })
}

/// A client for `org` whose counted requests pass through `limiter`, and which keeps the
/// refresh tokens Salesforce rotates in `sfpg.orgs` (through `database`), sealed with `key`
/// as every stored secret is. What the sync, the proxy and the CLI log in with.
pub fn stored_client(
    org: &Org,
    limiter: RateLimiter,
    database: &tokio_postgres::Config,
    key: &MasterKey,
) -> Result<Client, sfpg_salesforce::Error> {
    let client = client(org, limiter)?;
    if org.auth_flow == AuthFlow::RefreshToken {
        client.keep_refresh_tokens_in(Arc::new(StoredRefreshToken {
            database: database.clone(),
            key: key.clone(),
            org: org.name.clone(),
        }));
    }
    Ok(client)
}

/// An org's refresh token in `sfpg.orgs`. Rotation happens once per re-authentication, so
/// each save or load opens a connection of its own rather than holding one.
struct StoredRefreshToken {
    database: tokio_postgres::Config,
    key: MasterKey,
    org: String,
}

impl StoredRefreshToken {
    async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        open(&self.database)
            .await
            .map_err(|e| StoreError(format!("cannot reach the control database: {e}")))
    }
}

/// Opens a connection to the database of `database` and drives it on the current runtime.
pub async fn open(
    database: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = database.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "a database connection closed");
        }
    });
    Ok(client)
}

pub use deadpool_postgres::{Object as Pooled, Pool};

/// A pool of at most `size` connections to the database of `database`: what a sync worker's
/// orgs share (their schedulers, streams and event streams take a connection for a turn or
/// a batch, not for their lifetime). A connection is checked with a cheap test when it is
/// handed out again, so one the server closed is replaced rather than returned.
pub fn pool(database: &tokio_postgres::Config, size: usize) -> Result<Pool, crate::ControlError> {
    let manager = deadpool_postgres::Manager::from_config(
        database.clone(),
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| crate::ControlError::Corrupt(format!("cannot build the connection pool: {e}")))
}

impl RefreshTokenStore for StoredRefreshToken {
    fn save<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.connect().await?;
            orgs::save_refresh_token(&mut client, &self.org, refresh_token, &self.key)
                .await
                .map_err(|e| StoreError(format!("org {}: {e}", self.org)))
        })
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<SecretString>, StoreError>> {
        Box::pin(async move {
            let client = self.connect().await?;
            let org = orgs::load(&client, &self.org, &self.key)
                .await
                .map_err(|e| StoreError(format!("org {}: {e}", self.org)))?;
            Ok(org.secrets.refresh_token)
        })
    }
}

/// The org's background rate as the client's limiter understands it.
pub fn rate(org: &Org) -> Result<Rate, sfpg_salesforce::Error> {
    Rate::new(org.rate_limit.requests, org.rate_limit.period)
}

/// A client for `org` whose counted requests pass through `limiter` (one per org).
pub fn client(org: &Org, limiter: RateLimiter) -> Result<Client, sfpg_salesforce::Error> {
    Client::new(config(org)?, credentials(org)?, limiter)
}

/// The rate limiter of each org one process talks to, by org name. The sync and the proxy
/// of one process take their limiters from the same registry, so an org has one bucket:
/// its interactive pushes queue ahead of its background polling, and together they stay
/// within the org's rate. Clones share the registry.
#[derive(Clone, Default)]
pub struct Limiters {
    by_org: Arc<Mutex<HashMap<String, RateLimiter>>>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").finish_non_exhaustive()
    }
}

impl Limiters {
    pub fn new() -> Self {
        Self::default()
    }

    /// The limiter of `org`, made on first use. `org` was just read from `sfpg.orgs`, so its
    /// rate is the current one: a limiter at another rate is moved to it, which keeps the
    /// rate live for whichever of sync and proxy reads the org last.
    pub fn for_org(&self, org: &Org) -> Result<RateLimiter, sfpg_salesforce::Error> {
        let rate = rate(org)?;
        let limiter = self
            .by_org
            .lock()
            // Each critical section is one lookup or insert: the map is whole after a panic.
            .unwrap_or_else(PoisonError::into_inner)
            .entry(org.name.clone())
            .or_insert_with(|| RateLimiter::new(rate))
            .clone();
        if limiter.rate() != rate {
            limiter.set_rate(rate);
        }
        Ok(limiter)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::orgs::{OrgSecrets, RateLimit};

    fn org(auth_flow: AuthFlow, secrets: OrgSecrets) -> Org {
        Org {
            name: "acme".to_owned(),
            schema_name: "acme".to_owned(),
            auth_flow,
            login_url: "https://acme.my.salesforce.com".to_owned(),
            instance_url: None,
            api_version: "61.0".to_owned(),
            client_id: "client".to_owned(),
            username: Some("user@acme.example".to_owned()),
            secrets,
            ca_cert_pem: None,
            batch_size: 200,
            bulk_threshold: None,
            rate_limit: RateLimit {
                requests: 2,
                period: Duration::from_secs(1),
            },
            max_daily_share: 0.8,
            enabled: true,
            org_id: None,
        }
    }

    fn secret(s: &str) -> Option<SecretString> {
        Some(SecretString::from(s.to_owned()))
    }

    #[test]
    fn each_flow_gets_its_credentials() {
        let password = org(
            AuthFlow::Password,
            OrgSecrets {
                client_secret: secret("cs"),
                password: secret("pw"),
                ..OrgSecrets::default()
            },
        );
        assert_eq!(
            credentials(&password).unwrap().flow(),
            sfpg_salesforce::AuthFlow::Password
        );
        let client_credentials = org(
            AuthFlow::ClientCredentials,
            OrgSecrets {
                client_secret: secret("cs"),
                ..OrgSecrets::default()
            },
        );
        assert_eq!(
            credentials(&client_credentials).unwrap().flow(),
            sfpg_salesforce::AuthFlow::ClientCredentials
        );
        let refresh = org(
            AuthFlow::RefreshToken,
            OrgSecrets {
                refresh_token: secret("rt"),
                ..OrgSecrets::default()
            },
        );
        assert_eq!(
            credentials(&refresh).unwrap().flow(),
            sfpg_salesforce::AuthFlow::RefreshToken
        );
        assert_eq!(config(&password).unwrap().api_version().as_str(), "61.0");
        let rate = rate(&password).unwrap();
        assert_eq!(rate.period(), Duration::from_secs(1));
    }

    #[test]
    fn one_org_gets_one_bucket_at_its_latest_rate() {
        let limiters = Limiters::new();
        let mut acme = org(AuthFlow::ClientCredentials, OrgSecrets::default());
        let first = limiters.for_org(&acme).unwrap();
        acme.rate_limit.requests = 10;
        let second = limiters.for_org(&acme).unwrap();
        // The same bucket: the new rate reached the limiter handed out first.
        assert_eq!(first.rate().requests(), 10);
        assert_eq!(second.rate(), first.rate());
        let other = org(AuthFlow::ClientCredentials, OrgSecrets::default());
        let other = Org {
            name: "globex".to_owned(),
            ..other
        };
        assert_eq!(limiters.for_org(&other).unwrap().rate().requests(), 2);
        assert_eq!(first.rate().requests(), 10);
    }

    #[test]
    fn a_missing_secret_is_named_without_values() {
        let incomplete = org(
            AuthFlow::Password,
            OrgSecrets {
                client_secret: secret("cs-value"),
                ..OrgSecrets::default()
            },
        );
        let error = credentials(&incomplete).unwrap_err().to_string();
        assert!(error.contains("has no password stored"), "{error}");
        assert!(!error.contains("cs-value"));
    }
}
