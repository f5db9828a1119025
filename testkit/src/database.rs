//! A fresh database per test, created on the shared server and dropped (with its
//! connections forced closed) when the test's [`TestDatabase`] goes out of scope, including
//! when the test panics.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, Config, NoTls};

use crate::cluster::{Server, server};

static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// One test's database.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    server: &'static Server,
}

impl TestDatabase {
    /// Creates a fresh, empty database, starting the shared server first if needed.
    pub async fn create() -> TestDatabase {
        // The first call starts a cluster: seconds of blocking work that must not stall the
        // runtime's other tasks.
        let server = tokio::task::spawn_blocking(server)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let name = database_name();
        let admin = connect(&server.url("postgres")).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("sfpg-testkit: cannot create database {name}: {e}"));
        TestDatabase {
            url: server.url(&name),
            name,
            server,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection URL for this database, as a superuser of the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn config(&self) -> Config {
        Config::from_str(&self.url)
            .unwrap_or_else(|e| panic!("sfpg-testkit: bad URL for {}: {e}", self.name))
    }

    pub fn server(&self) -> &'static Server {
        self.server
    }

    /// A new connection to this database; its I/O runs on the current tokio runtime.
    pub async fn connect(&self) -> Client {
        connect(&self.url).await
    }

    /// This database's user, password and name, at `addr` instead of the server: how a
    /// test reaches it through a proxy.
    pub fn config_via(&self, addr: SocketAddr) -> Config {
        // A fresh configuration: `host` and `port` on an existing one add a second address
        // rather than replace the first.
        let mut config = Config::new();
        config
            .host(addr.ip().to_string())
            .port(addr.port())
            .user(self.server.user())
            .dbname(&self.name);
        if let Some(password) = self.server.password() {
            config.password(password);
        }
        config
    }

    /// A new connection to this database through `addr`.
    pub async fn connect_via(&self, addr: SocketAddr) -> Client {
        let (client, connection) = self
            .config_via(addr)
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("sfpg-testkit: cannot connect through {addr}: {e}"));
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.server.url("postgres");
        let name = self.name.clone();
        // Drop may run inside a runtime (no blocking there) or while a test unwinds, so the
        // drop gets a thread and a runtime of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("sfpg-testkit: could not drop database {}: {e}", self.name),
            Err(_) => eprintln!("sfpg-testkit: dropping database {} panicked", self.name),
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("sfpg-testkit: cannot connect to the test server: {e}"));
    tokio::spawn(async move {
        // A dropped client ends the connection; an error here is the test's own business.
        let _ = connection.await;
    });
    client
}

/// `t<pid>_<n>_<test name>`: unique per process and run, and readable in `pg_stat_activity`
/// when a test hangs. libtest names each test's thread after the test.
fn database_name() -> String {
    let n = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
    let thread = std::thread::current();
    let test: String = thread
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("t{}_{n}_{test}", std::process::id())
}
