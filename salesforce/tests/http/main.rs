//! The client over real HTTP against a scripted Salesforce (see `scripted.rs`): what it
//! sends, and how it reacts to each documented answer.

// Like `#[test]` functions (clippy.toml), the support code here may unwrap: a broken fixture
// should stop the test loudly at the line that broke.
#![allow(clippy::unwrap_used)]

mod auth;
mod bulk;
mod cometd_server;
mod limiter;
mod operations;
mod retries;
mod scripted;
mod secrets;
mod streaming;
mod tls;
