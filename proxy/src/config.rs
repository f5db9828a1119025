//! What a proxy is configured with.

use std::time::Duration;

use sfpg_schema::control::MasterKey;

use crate::backend::UpstreamAddr;
use crate::frontend::tls::TlsConfig;
use crate::push::Failpoint;

#[derive(Debug)]
pub struct ProxyConfig {
    /// Where clients connect, such as `127.0.0.1:6543`.
    pub listen: String,
    /// The mirror database's server. Each client session gets its own connection to it,
    /// authenticated with the client's own credentials.
    pub upstream: UpstreamAddr,
    /// TLS for clients that ask for it; without it SSLRequest is answered `N`.
    pub tls: Option<TlsConfig>,
    /// Pushing writes to Salesforce. Without it, reads and writes to tables that mirror
    /// nothing work as through any relay, and a write to a mirrored table is refused.
    pub push: Option<PushConfig>,
    /// How many threads run client sessions, each a single-threaded runtime that keeps its
    /// sessions to itself: a session's wake-ups then cost no hand-over between threads, as
    /// on a work-stealing runtime, and sessions on different threads still run in parallel
    /// ([`default_session_threads`], docs/benchmarks.md). 0 runs sessions on the runtime
    /// that calls [`Proxy::serve`](crate::Proxy::serve).
    pub session_threads: usize,
}

/// One session thread per core. At 8 pgbench clients on 2 cores, two threads gave more
/// transactions per second than one in both scheduling setups where both ran (medians 6-37%
/// more), although each transaction cost 1-3 µs more CPU: with one thread, every session
/// waits whenever that thread is not on a core (docs/benchmarks.md).
pub fn default_session_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// What pushing to Salesforce needs.
#[derive(Debug)]
pub struct PushConfig {
    /// The mirror database, for the proxy's own connections (control schema, write
    /// journal, repairs), with the proxy's own credentials.
    pub control: tokio_postgres::Config,
    /// Opens the orgs' stored credentials.
    pub master_key: MasterKey,
    /// How often the write journal is checked for pushes to repair (also once at start).
    pub repair_every: Duration,
    /// For crash tests only.
    pub failpoint: Option<Failpoint>,
}
