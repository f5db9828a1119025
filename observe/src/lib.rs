//! sfpg's observability listener: one HTTP endpoint per process serving `/metrics` (the
//! Prometheus text format, rendered by `metrics-exporter-prometheus` from everything the
//! crates record through the `metrics` facade) and, at `/`, the status page's router.
//!
//! It binds to loopback unless told otherwise; an address other machines can reach needs a
//! bearer token, and then every path asks for it.

mod auth;
mod listener;
pub mod metrics;
pub mod page;
mod sync_gauges;

pub use listener::{Listener, ObserveError, Refresh};
pub use sync_gauges::SyncGauges;
