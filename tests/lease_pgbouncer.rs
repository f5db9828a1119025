//! The workers' heartbeats and leases through PgBouncer in transaction mode, where a
//! client's consecutive statements may run on different server connections and nothing of
//! a session survives a transaction: three workers register, renew, take, fence and leave
//! through two server connections, and every answer is right; the session advisory lock the
//! leases replaced is, through the same PgBouncer, held by two clients at once.
//!
//! PgBouncer is Debian's (`/usr/sbin/pgbouncer`), run from a throwaway directory (as
//! `nobody` when the tests run as root, which it refuses).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sfpg_control::ControlError;
use sfpg_control::leases::{self, Fence, Held};
use sfpg_testkit::TestDatabase;

const ORGS: [&str; 6] = ["o1", "o2", "o3", "o4", "o5", "o6"];
const TTL: Duration = Duration::from_secs(5);

struct PgBouncer {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// PgBouncer in transaction mode in front of `db`'s server, with two server connections.
fn pgbouncer(db: &TestDatabase) -> PgBouncer {
    let server = db.server();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("sfpg-test-pgbouncer-{port}"));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let ini = format!(
        "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
         listen_port = {port}\nauth_type = scram-sha-256\nauth_file = {dir}/users.txt\n\
         pool_mode = transaction\nmax_client_conn = 50\ndefault_pool_size = 2\n\
         logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\nunix_socket_dir =\n",
        host = server.host(),
        server_port = server.port(),
        dir = dir.display()
    );
    fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
    fs::write(
        dir.join("users.txt"),
        format!(
            "\"{}\" \"{}\"\n",
            server.user(),
            server.password().expect("the test server has a password")
        ),
    )
    .unwrap();
    for file in ["pgbouncer.ini", "users.txt"] {
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut command = Command::new("/usr/sbin/pgbouncer");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        command.args(["-u", "nobody"]);
    }
    let child = command
        .arg(dir.join("pgbouncer.ini"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgbouncer (apt-get install pgbouncer)");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "pgbouncer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    PgBouncer { child, dir, addr }
}

/// The first column of the first row of `sql`, run with the simple query protocol (a named
/// prepared statement may be gone by the time it is executed through PgBouncer in
/// transaction mode: "prepared statement \"s40\" does not exist").
async fn first_value(client: &tokio_postgres::Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_leases_work_through_pgbouncer_in_transaction_mode() {
    let db = TestDatabase::create().await;
    let mut direct = db.connect().await;
    sfpg_control::apply_control_schema(&mut direct)
        .await
        .unwrap();
    for org in ORGS {
        direct
            .execute(
                "INSERT INTO sfpg.orgs (name, schema_name, auth_flow, login_url, client_id, sealed_credentials)
                 VALUES ($1, $1, 'password', 'https://login.example', 'client', '\\x00')",
                &[&org],
            )
            .await
            .unwrap();
    }
    let bouncer = pgbouncer(&db);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(db.connect_via(bouncer.addr).await);
    }
    // Transaction mode indeed: while the first client's transaction holds one server
    // connection, the second client runs on the other; once it ends, on the first's.
    clients[0].batch_execute("BEGIN").await.unwrap();
    let pinned = first_value(&clients[0], "SELECT pg_backend_pid()").await;
    let mut backends = BTreeSet::new();
    backends.insert(first_value(&clients[1], "SELECT pg_backend_pid()").await);
    clients[0].batch_execute("COMMIT").await.unwrap();
    backends.insert(first_value(&clients[1], "SELECT pg_backend_pid()").await);
    assert!(backends.contains(&pinned), "{backends:?} vs {pinned}");
    assert_eq!(backends.len(), 2, "one client on two server connections");

    // What leases replace: a session advisory lock taken through PgBouncer belongs to
    // whichever server connection ran the statement, so another client that lands there
    // gets it too: two holders.
    let lock = "SELECT pg_try_advisory_lock(1937205363, 42)";
    let first = first_value(&clients[0], lock).await == "t";
    let mut second = false;
    for _ in 0..10 {
        second |= first_value(&clients[1], lock).await == "t";
    }
    assert!(
        first && second,
        "through PgBouncer an advisory lock is held by two clients at once"
    );

    let names: Vec<String> = (1..=3).map(|i| format!("worker-{i}:1")).collect();
    let all: Vec<String> = ORGS.iter().map(|o| (*o).to_owned()).collect();
    let mut held: BTreeMap<String, Vec<Held>> = BTreeMap::new();
    for (client, name) in clients.iter().zip(&names) {
        leases::register(client, name, TTL, 10).await.unwrap();
    }
    // Each worker takes what is free, two orgs a round, renews, and writes under its
    // fences; all three at once.
    for _ in 0..10 {
        let rounds = clients.iter().zip(&names).map(|(client, name)| {
            let all = all.clone();
            async move {
                let renewed = leases::heartbeat(client, name, TTL, 10).await.unwrap();
                let view = leases::view(client).await.unwrap();
                assert_eq!(view.workers.len(), 3, "{view:?}");
                let free: Vec<String> = view
                    .leases
                    .iter()
                    .filter(|l| l.owner.is_none())
                    .map(|l| l.org.clone())
                    .filter(|o| all.contains(o))
                    .take(2)
                    .collect();
                let taken = leases::take(client, name, &free, TTL).await.unwrap();
                (name.clone(), renewed, taken)
            }
        });
        for (name, renewed, taken) in futures::future::join_all(rounds).await {
            let mine = held.entry(name).or_default();
            // Renewed is exactly what the worker held before this round.
            let mut expected = mine.clone();
            expected.sort_by(|a, b| a.org.cmp(&b.org));
            assert_eq!(renewed, expected);
            mine.extend(taken);
        }
    }
    let taken: Vec<&String> = held.values().flatten().map(|h| &h.org).collect();
    let distinct: BTreeSet<&String> = taken.iter().copied().collect();
    assert_eq!(taken.len(), ORGS.len(), "each org taken once: {held:?}");
    assert_eq!(distinct.len(), ORGS.len());

    // The fences hold through it: each holder writes, a stale epoch is refused.
    let mut writer = db.connect_via(bouncer.addr).await;
    for (name, mine) in &held {
        for lease in mine {
            let fence = Fence::new(lease.org.clone(), name.clone(), lease.epoch);
            fence
                .begin(&mut writer, None)
                .await
                .unwrap()
                .commit()
                .await
                .unwrap();
            let stale = Fence::new(lease.org.clone(), name.clone(), lease.epoch - 1);
            let refused = stale
                .begin(&mut writer, None)
                .await
                .map(|_| ())
                .unwrap_err();
            assert!(matches!(refused, ControlError::Fenced { .. }), "{refused}");
        }
    }
    for (client, name) in clients.iter().zip(&names) {
        leases::leave(client, name).await.unwrap();
    }
    let view = leases::view(&direct).await.unwrap();
    assert!(view.workers.is_empty() && view.leases.iter().all(|l| l.owner.is_none()));
}
