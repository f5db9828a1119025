//! Processes a test starts, such as the `sfpg` binary: what they print is read as it comes
//! (so a full pipe never stalls them), their log is kept and echoed to the test's output,
//! they are killed when the test ends however it ends, and `/proc` tells what they cost.
//! [`Crashing`] is the crash tests' process: killed with SIGKILL and started again. Also
//! the one way tests wait for something with a deadline.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// A child process of a test, killed (and reaped) when dropped.
pub struct TestProcess {
    name: String,
    child: Child,
    /// Its standard output, line by line.
    stdout: mpsc::Receiver<String>,
    /// The lines of standard output read so far.
    printed: Vec<String>,
    /// Its standard error, line by line: its log.
    log: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for TestProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl TestProcess {
    /// Starts `command` with no input; its output is read in the background, and each line
    /// of its standard error is kept and echoed to the test's as `name: line`.
    pub fn spawn(name: &str, command: &mut Command) -> TestProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let (sender, stdout) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let lines = Arc::clone(&log);
            let prefix = name.to_owned();
            std::thread::spawn(move || forward(err, &prefix, &lines));
        }
        TestProcess {
            name: name.to_owned(),
            child,
            stdout,
            printed: Vec::new(),
            log,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints, waiting at most `within`; `None` when it printed none by
    /// then, or ended first.
    pub fn next_line(&mut self, within: Duration) -> Option<String> {
        let line = self.stdout.recv_timeout(within).ok()?;
        self.printed.push(line.clone());
        Some(line)
    }

    /// Reads what it prints until a line satisfies `done`, for at most `within`; panics
    /// with all it printed when none does.
    pub fn wait_for_line(&mut self, within: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if done(&line) => return line,
                Some(_) => {}
                None => {
                    self.kill();
                    panic!(
                        "{} did not print the line awaited within {within:?}; it printed:\n{}",
                        self.name,
                        self.printed.join("\n")
                    );
                }
            }
        }
    }

    /// All it printed, once its output has ended (it has exited): each line followed by a
    /// newline. Panics if the output goes on for longer than `within`.
    pub fn all_printed(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => self.printed.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{} still printing after {within:?}", self.name)
                }
            }
        }
        self.printed
            .iter()
            .map(|line| format!("{line}\n"))
            .collect()
    }

    /// Everything it printed so far (what [`TestProcess::next_line`] read).
    pub fn printed(&self) -> &[String] {
        &self.printed
    }

    /// The address in its first line, `… listening on ADDR`, as a server prints it once it
    /// listens; waits at most `within`.
    pub fn listening_addr(&mut self, within: Duration) -> SocketAddr {
        let line = self.wait_for_line(within, |_| true);
        line.trim()
            .rsplit_once(" listening on ")
            .and_then(|(_, addr)| addr.parse().ok())
            .unwrap_or_else(|| panic!("{}: no address in its first line {line:?}", self.name))
    }

    /// How many lines it has logged so far.
    pub fn log_len(&self) -> usize {
        self.log().len()
    }

    /// The lines logged since the first `start`.
    pub fn log_since(&self, start: usize) -> Vec<String> {
        self.log().get(start..).unwrap_or_default().to_vec()
    }

    /// How many lines logged so far contain `text`.
    pub fn logged(&self, text: &str) -> usize {
        self.log().iter().filter(|l| l.contains(text)).count()
    }

    /// Sends `signal` (`TERM`, `INT`…) with kill(1).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "cannot send SIG{signal} to {}", self.name);
    }

    /// SIGKILL, and waits until it is gone: no chance to release anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.name))
    }

    /// Waits (without blocking the runtime) for it to exit; kills it and panics when it has
    /// not within `within`.
    pub async fn exit_within(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("{} did not exit within {within:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and the clean exit (status 0) it must lead to within `within`.
    pub async fn stop_cleanly(mut self, within: Duration) {
        self.signal("TERM");
        let status = self.exit_within(within).await;
        assert!(status.success(), "{} exited with {status}", self.name);
    }

    /// A field of its `/proc/<pid>/status`, in bytes: `VmRSS` (resident now) or `VmHWM`
    /// (the most it has been resident).
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.id()))
            .unwrap_or_else(|e| panic!("cannot read the status of {}: {e}", self.name));
        let kb: Option<u64> = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
        kb.unwrap_or_else(|| panic!("no {field} in the status of {}", self.name)) * 1024
    }

    /// The CPU time (user and system) it has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.id()))
            .unwrap_or_else(|e| panic!("cannot read the stat of {}: {e}", self.name));
        // The fields after the command name, which is in parentheses and may hold spaces:
        // the 14th and 15th fields of the line (utime, stime) are the 12th and 13th here.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| -> u64 {
            fields
                .get(i)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no CPU time in the stat of {}: {stat}", self.name))
        };
        Duration::from_millis((tick(11) + tick(12)) * 1000 / clock_ticks_per_second())
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A process a crash test kills with SIGKILL and starts again, how it starts given once.
/// SIGKILL leaves it no chance to release anything or finish a write, which is the point:
/// what it committed must be all that counts.
pub struct Crashing {
    start: Box<dyn FnMut() -> TestProcess + Send>,
    process: TestProcess,
    kills: usize,
}

impl std::fmt::Debug for Crashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crashing")
            .field("process", &self.process)
            .field("kills", &self.kills)
            .finish_non_exhaustive()
    }
}

impl Crashing {
    /// Starts the process with `start`, which starts it again after each kill.
    pub fn start(mut start: impl FnMut() -> TestProcess + Send + 'static) -> Crashing {
        let process = start();
        Crashing {
            start: Box::new(start),
            process,
            kills: 0,
        }
    }

    /// SIGKILLs it and waits until it is gone.
    pub fn kill(&mut self) {
        self.process.kill();
        self.kills += 1;
    }

    /// Lets it run for `run` (without blocking the runtime), then [`Crashing::kill`]s it.
    pub async fn kill_after(&mut self, run: Duration) {
        tokio::time::sleep(run).await;
        self.kill();
    }

    /// Starts it again, as at first.
    pub fn restart(&mut self) {
        self.process = (self.start)();
    }

    /// One crash and recovery: runs for `run`, is killed, stays down for `down`, and is
    /// started again.
    pub async fn crash(&mut self, run: Duration, down: Duration) {
        self.kill_after(run).await;
        tokio::time::sleep(down).await;
        self.restart();
    }

    /// Runs `work` (what a client does through the process) on a task of its own,
    /// SIGKILLs the process at a random moment between `low` and `high` after
    /// ([`random_between`]), and starts it again; prints when the kill came and what the
    /// client was told, and returns the latter.
    pub async fn kill_at_random_during<T: std::fmt::Debug + Send + 'static>(
        &mut self,
        work: impl std::future::Future<Output = T> + Send + 'static,
        low: Duration,
        high: Duration,
    ) -> T {
        let work = tokio::spawn(work);
        let at = random_between(low, high);
        self.kill_after(at).await;
        let told = match work.await {
            Ok(told) => told,
            Err(error) => panic!("the client's work did not end: {error}"),
        };
        eprintln!("killed after {at:?}; the client was told {told:?}");
        self.restart();
        told
    }

    /// How many times it was killed.
    pub fn kills(&self) -> usize {
        self.kills
    }

    /// The process running now.
    pub fn process(&mut self) -> &mut TestProcess {
        &mut self.process
    }

    /// SIGTERM, and the clean exit (status 0) it must lead to within `within`.
    pub async fn stop_cleanly(self, within: Duration) {
        self.process.stop_cleanly(within).await;
    }
}

/// A pseudo-random wait between `low` and `high`, from the clock: no seed to keep, each run
/// kills at other points, which is the point of a crash test.
pub fn random_between(low: Duration, high: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let span = u64::try_from(high.saturating_sub(low).as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    low + Duration::from_millis(u64::from(nanos) % span)
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn forward(stream: impl Read, prefix: &str, lines: &Mutex<Vec<String>>) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        eprintln!("{prefix}: {line}");
        lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Runs `command` to its end off the runtime's threads (an emulator of the test may serve
/// from them), and returns what it printed and how it exited.
pub async fn output(mut command: Command) -> Output {
    let program = command.get_program().to_owned();
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Polls `holds` until it is true, and panics naming `what` when it is not within
/// `within`.
pub async fn eventually(what: &str, within: Duration, mut holds: impl AsyncFnMut() -> bool) {
    eventually_some(what, within, async || holds().await.then_some(())).await;
}

/// Polls `check` until it returns a value, and returns it; panics naming `what` when it has
/// not within `within`.
pub async fn eventually_some<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads a state with `read` until `done` holds of it, and returns it; panics naming `what`
/// and the last state read when it has not within `within`.
pub async fn wait_until<T: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut read: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let now = read().await;
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
