//! The emulator's HTTP face: an axum server speaking Salesforce's OAuth token endpoint,
//! REST API (versions, limits, sObjects and describe, query with locators, sObject
//! Collections, Composite, replication, Bulk API 2.0 query jobs) and a separate admin API under `/__emulator/` for fault
//! injection and inspection.
//!
//! ```text
//! let emulator = sfpg_emulator::http::start(EmulatorConfig::default()).await?;
//! // log in at emulator.token_url(), call emulator.instance_url(), then:
//! emulator.fail_next(FailureRule::new(503, "SERVER_UNAVAILABLE"));
//! emulator.shutdown().await;
//! ```
//!
//! Requests pass an outer service first (fault injection, request log,
//! `Sforce-Limit-Info`, Salesforce-shaped framework errors), then the router; versioned
//! REST routes pass [`auth`]'s gate (version, session, daily allocation) before their
//! handler. The org sits behind one `RwLock`, taken for short synchronous sections only.

mod admin;
mod admin_cdc;
mod admin_pubsub;
mod auth;
pub mod bulk;
mod collections;
mod cometd;
mod composite;
mod config;
mod error;
mod faults;
mod limits;
mod locators;
mod oauth;
pub mod orgs;
pub mod pubsub;
mod query;
mod replication;
mod request_log;
mod routes;
mod routing;
mod server;
mod service;
mod sessions;
mod sobjects;
mod state;
mod tls;
mod tooling;
mod versions;

pub use bulk::faults::QueryJobFault;
pub use bulk::jobs::JobState;
pub use cometd::{DEFAULT_CLIENT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, MAX_REQUEST_BYTES};
pub use config::{
    ConnectedApp, DEFAULT_BULK_PROCESSING_DELAY, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD, DEFAULT_USERNAME, EmulatorConfig, OrgSource, Transport, UserLogin,
};
pub use error::{OAuthError, RestError};
pub use faults::{DropRule, FailureRule, FaultsView, Latency, RequestMatcher};
pub use orgs::OrgLogin;
pub use request_log::LoggedRequest;
pub use server::{RunningEmulator, start};

use std::path::PathBuf;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot write the certificate to {path}: {source}")]
    CertFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
}
