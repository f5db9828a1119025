//! The proxy in a process of its own, as `sfpg proxy` runs it and as PgBouncer runs: this
//! benchmark's executable started again with [`UPSTREAM_VAR`] set, serving the proxy and
//! nothing else, with the default session threads, on the benchmark's runtime (two workers;
//! the `sfpg` binary's `Runtime::new` has one per core, two on the machines measured). In
//! the benchmark's own process the proxy would share the process, and its scheduling, with
//! the benchmark and the bare relay.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use sfpg_proxy::{ClientLimits, Proxy, ProxyConfig, UpstreamAddr};

/// `host:port` of the PostgreSQL server the child proxies to; set only in the child.
pub const UPSTREAM_VAR: &str = "SFPG_BENCH_PROXY_UPSTREAM";

pub struct ProxyProcess {
    child: Child,
    pub port: u16,
}

impl ProxyProcess {
    /// Its process id, for its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the proxy's process in front of `host:port`; it is listening once this returns.
pub fn start(host: &str, port: u16) -> Result<ProxyProcess, Box<dyn Error>> {
    let child = Command::new(std::env::current_exe()?)
        .env(UPSTREAM_VAR, format!("{host}:{port}"))
        .stdout(Stdio::piped())
        .spawn()?;
    // Until the port is read, a failure must not leave the child running.
    let mut process = ProxyProcess { child, port: 0 };
    let stdout = process
        .child
        .stdout
        .take()
        .ok_or("the proxy's process has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    process.port = line
        .trim()
        .parse()
        .map_err(|_| format!("the proxy's process did not print its port: {line:?}"))?;
    Ok(process)
}

/// The child's side: binds on a free port, prints it, and serves until killed.
pub async fn serve(upstream: &str) -> Result<(), Box<dyn Error>> {
    let (host, port) = upstream
        .rsplit_once(':')
        .ok_or_else(|| format!("{UPSTREAM_VAR} is not host:port: {upstream:?}"))?;
    let proxy = Proxy::bind(ProxyConfig {
        listen: "127.0.0.1:0".into(),
        upstream: UpstreamAddr::Tcp {
            host: host.to_owned(),
            port: port.parse()?,
        },
        tls: None,
        push: None,
        session_threads: sfpg_proxy::default_session_threads(),
        limits: ClientLimits::default(),
    })
    .await?;
    println!("{}", proxy.local_addr()?.port());
    proxy.serve().await?;
    Ok(())
}
