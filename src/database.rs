//! Connecting to the mirror database, with errors a person can act on: which server, as
//! whom, and why it failed. The password never appears in them.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::errors::UserError;

/// How long to wait for the server before reporting it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a `postgres://` URL or a `key=value` connection string.
pub fn parse_url(url: &str) -> anyhow::Result<Config> {
    let mut config = Config::from_str(url)
        // The parser's messages name the bad part, never the whole string (which may hold a
        // password). A URL that does not parse is the user's to fix: exit code 2.
        .map_err(|e| UserError::new(format!("invalid database URL: {}", error_chain(&e))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// Connects and drives the connection on the current runtime.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let config = parse_url(url)?;
    let target = describe_target(&config);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| anyhow!("{}", connect_reason(&e)))
        .with_context(|| format!("cannot connect to PostgreSQL at {target}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "database connection closed");
        }
    });
    Ok(client)
}

/// `host:port (database db, user u)`.
pub fn describe_target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let dbname = config.get_dbname().unwrap_or(user);
    format!("{host}:{port} (database {dbname}, user {user})")
}

/// An error and its causes, joined as `outer: inner`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The most specific reason: the server's own message for a refused login, the OS's for a
/// refused or timed-out connection.
fn connect_reason(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_owned();
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let reason = innermost.to_string();
    if reason.is_empty() {
        error.to_string()
    } else {
        reason
    }
}
