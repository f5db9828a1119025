//! What a proxy is configured with.

use std::time::Duration;

use sfpg_control::MasterKey;

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
    /// What a client may make the proxy hold, and for how long before it authenticates.
    pub limits: ClientLimits,
}

/// Bounds on what one client can make the proxy spend, as PostgreSQL bounds its backends
/// (`authentication_timeout`, `max_connections`, `pq_getmessage`'s maximum lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// From accepting a connection to the server's ReadyForQuery after authentication:
    /// past it the connection is closed (FATAL 57014, as PostgreSQL's
    /// `authentication_timeout`, whose default this takes).
    pub auth_timeout: Duration,
    /// Client connections held at once, authenticated or not. Past it a connection is
    /// refused with FATAL 53300 once its StartupMessage is read (so that a CancelRequest
    /// still gets through); as many again may be in that state, and any more are refused
    /// as soon as they are accepted.
    pub max_client_connections: usize,
    /// The longest message, after authentication, that the proxy holds whole (its length
    /// word, which counts itself). Messages it decodes (Query, Parse, Bind, ...) must fit;
    /// CopyData of any length is passed on in pieces as it arrives. Longer ones close the
    /// session with FATAL 08P01.
    pub max_message_size: usize,
}

impl ClientLimits {
    /// PostgreSQL's `authentication_timeout` default.
    pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(60);
    /// PostgreSQL's `max_connections` default: each session holds one of the server's
    /// connections, so a server left at its default takes no more through the proxy.
    pub const DEFAULT_MAX_CLIENT_CONNECTIONS: usize = 100;
    /// 64 MiB, MySQL's `max_allowed_packet` default for the same trade: statement texts
    /// and parameters far past any a client sends in practice (bulk data goes through
    /// COPY, which streams), while 100 sessions at the limit hold 6.4 GiB, not 100 GiB as
    /// at PostgreSQL's own 1 GiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            auth_timeout: ClientLimits::DEFAULT_AUTH_TIMEOUT,
            max_client_connections: ClientLimits::DEFAULT_MAX_CLIENT_CONNECTIONS,
            max_message_size: ClientLimits::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
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
    /// How long `sfpg.write_failures` keeps the refusals of bulk pushes.
    pub failures_retention: Duration,
}

/// `--failures-retention`'s default: 7 days.
pub const DEFAULT_FAILURES_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
