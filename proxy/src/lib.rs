//! sfpg's write-through Postgres-protocol proxy.
//!
//! It is a message-level relay in the manner of PgBouncer or PgDog, not a re-implementation
//! of PostgreSQL: each client session gets its own upstream connection, authenticated with
//! the client's own credentials, and frames are forwarded untouched (a long CopyData in
//! pieces, as it arrives). The proxy decodes copies of the few messages that matter (SQL
//! text, statement and portal names, transaction status, errors, cancel keys).
//!
//! ```no_run
//! # async fn example() -> Result<(), sfpg_proxy::ProxyError> {
//! use sfpg_proxy::{ClientLimits, Proxy, ProxyConfig, UpstreamAddr, default_session_threads};
//! let proxy = Proxy::bind(ProxyConfig {
//!     listen: "127.0.0.1:6543".into(),
//!     upstream: UpstreamAddr::Tcp { host: "127.0.0.1".into(), port: 5432 },
//!     tls: None,
//!     push: None,
//!     session_threads: default_session_threads(),
//!     limits: ClientLimits::default(),
//! })
//! .await?;
//! proxy.serve().await
//! # }
//! ```

pub mod backend;
pub mod classify;
pub mod config;
pub mod error;
pub mod frontend;
pub mod net;
pub mod push;
pub mod server;
pub mod settings;
pub mod telemetry;

pub use backend::UpstreamAddr;
pub use config::{
    ClientLimits, DEFAULT_FAILURES_RETENTION, ProxyConfig, PushConfig, default_session_threads,
};
pub use error::{ProxyError, SessionError};
pub use frontend::tls::{TlsConfig, TlsConfigError};
pub use push::Failpoint;
pub use server::Proxy;
