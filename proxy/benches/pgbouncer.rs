//! PgBouncer, Debian's package, in session mode: the production-grade relay to compare
//! with. It runs as an unprivileged user (it refuses root) from a throwaway directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgBouncer {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl PgBouncer {
    /// Its process id, for its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Starts PgBouncer on a free port in front of `host:port`, letting `user` in with
/// `password` (SCRAM towards the server).
pub fn start(host: &str, port: u16, user: &str, password: &str) -> Result<PgBouncer, String> {
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(format!("sfpg-bench-pgbouncer-{listen}"));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
    let ini = format!(
        "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
         listen_port = {listen}\nauth_type = scram-sha-256\nauth_file = {dir}/users.txt\n\
         pool_mode = session\nmax_client_conn = 200\ndefault_pool_size = 50\n\
         logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\nunix_socket_dir =\n",
        dir = dir.display()
    );
    fs::write(dir.join("pgbouncer.ini"), ini).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("users.txt"),
        format!("\"{user}\" \"{password}\"\n"),
    )
    .map_err(|e| e.to_string())?;
    for file in ["pgbouncer.ini", "users.txt"] {
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644))
            .map_err(|e| e.to_string())?;
    }
    let binary = ["/usr/sbin/pgbouncer", "pgbouncer"]
        .into_iter()
        .find(|b| b.contains('/') && std::path::Path::new(b).exists())
        .unwrap_or("pgbouncer");
    let mut command = Command::new(binary);
    if is_root() {
        command.args(["-u", "nobody"]);
    }
    let child = command
        .arg(dir.join("pgbouncer.ini"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start pgbouncer (apt-get install pgbouncer): {e}"))?;
    let bouncer = PgBouncer {
        child,
        dir,
        port: listen,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
        if Instant::now() > deadline {
            return Err("pgbouncer did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(bouncer)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}
