//! The client against the sfpg emulator, a local org that speaks Salesforce's wire formats
//! and misbehaves on demand: the fault-injection behaviours of issue 4 (`faults`: expired
//! sessions, 503s, lock contention, the daily limit, slow answers), the rate limiter as the
//! server's request log sees it (`limiter`), every login flow (`logins`), and the
//! operations on real data (`operations`), Bulk API 2.0 query jobs (`bulk`, gzip on the
//! wire in `bulk_wire`), and Change Data Capture over CometD (`streaming`).

// As in `tests/http`, support code may unwrap.
#![allow(clippy::unwrap_used)]

mod bulk;
mod bulk_ingest;
mod bulk_wire;
mod faults;
mod limiter;
mod logins;
mod operations;
mod platform_events;
mod streaming;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sfpg_emulator::http::{
    self as emulator, ConnectedApp, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD,
    DEFAULT_USERNAME, EmulatorConfig, FailureRule, Latency, LoggedRequest, OrgSource,
    RunningEmulator, Transport,
};
use sfpg_salesforce::{
    Client, ClientCredentials, Conditional, Config, Credentials, Error, ErrorClass, JwtBearer,
    Password, Priority, Rate, RateLimiter, Record, RefreshToken, RefreshTokenStore, RetryPolicy,
    SalesforceId, StoreError,
};

const TOKEN_PATH: &str = "/services/oauth2/token";

async fn start(records: usize) -> RunningEmulator {
    emulator::start(EmulatorConfig {
        org: OrgSource::Generated { records, seed: 7 },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(10),
    }
}

fn config(emulator: &RunningEmulator) -> Config {
    Config::new(emulator.login_url())
        .unwrap()
        .with_retry(quick_retries())
}

fn password() -> Password {
    Password::new(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_USERNAME,
        DEFAULT_PASSWORD,
    )
}

fn client_with(config: Config, credentials: impl Into<Credentials>, rate: Rate) -> Client {
    Client::new(config, credentials, RateLimiter::new(rate)).unwrap()
}

fn client(emulator: &RunningEmulator) -> Client {
    client_with(
        config(emulator),
        password(),
        Rate::per_second(1000).unwrap(),
    )
}

/// API requests the emulator served, token requests excepted.
fn api_requests(emulator: &RunningEmulator) -> Vec<LoggedRequest> {
    emulator
        .requests(0)
        .into_iter()
        .filter(|r| r.path != TOKEN_PATH)
        .collect()
}

fn logins(emulator: &RunningEmulator) -> usize {
    emulator
        .requests(0)
        .iter()
        .filter(|r| r.path == TOKEN_PATH)
        .count()
}

fn record(value: serde_json::Value) -> Record {
    value.as_object().unwrap().clone()
}
