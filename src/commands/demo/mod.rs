//! `sfpg demo`: sfpg working end to end on one machine with nothing to configure. It serves
//! an emulated Salesforce org with generated data, mirrors it into PostgreSQL (the database
//! of DATABASE_URL, or a cluster of the demo's own, kept in the user's data directory and
//! reused by the next run), runs what `sfpg run` runs, waits for the backfill, and prints
//! how to connect with psql and the statements to try: a join, an UPDATE that reaches
//! Salesforce, an INSERT that Salesforce's validation rule refuses (run once at start,
//! so the error printed is the one the proxy really returns), and a platform event
//! published with INSERT for a session that LISTENs. Ctrl-C stops it all.

mod app_role;
mod bulk;
mod cluster;
mod large_write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use sfpg_control::events::is_platform_event;
use sfpg_control::status::{self, ObjectStatus};
use sfpg_control::{MasterKey, NewOrg, RateLimit, admin, master_key, orgs};
use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorConfig, OrgSource, RunningEmulator, Transport,
};
use sfpg_sync::SyncSettings;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use self::cluster::{Cluster, ServerUser};
use self::large_write::LargeWrite;
use crate::commands::observe;
use crate::commands::org::{control_client, load_or_create_master_key, user_facing};
use crate::commands::proxy::ProxyOptions;
use crate::commands::run::{Services, cancel_on_signal};
use crate::commands::status::follow_backfills;
use crate::database;
use crate::errors::UserError;

/// The demo org's name in sfpg.
const ORG: &str = "demo";
/// Where its tables go, as Heroku Connect would put them.
const SCHEMA: &str = "salesforce";
const OBJECTS: [&str; 5] = ["Account", "Contact", "Opportunity", "Invoice__c", "Lead"];
/// The platform event the demo streams into its table (and publishes through the proxy).
const EVENT: &str = "Order_Event__e";
/// Fast enough that the backfill takes seconds; the emulator's allowance is raised to match.
const DEMO_RATE: RateLimit = RateLimit {
    requests: 10,
    period: Duration::from_secs(1),
};
const DEMO_DAILY_API_LIMIT: u64 = 10_000_000;
/// How long the backfill may take before the demo gives up and says so.
const BACKFILL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many records the emulated org is generated with (accounts with their contacts,
    /// opportunities and invoices, plus leads and products).
    #[arg(long, default_value_t = 2000)]
    pub records: usize,
    /// The port of 127.0.0.1 where the proxy listens, for psql and other clients.
    #[arg(long, default_value_t = 6543)]
    pub port: u16,
    /// The port of 127.0.0.1 serving `/metrics` and the status page (another free port if
    /// it is taken).
    #[arg(long, default_value_t = 9187)]
    pub metrics_port: u16,
    /// Mirror into this database instead of the demo's own PostgreSQL cluster.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let (dir, run_as) = demo_dir()?;
    println!("sfpg demo (state in {})", dir.display());

    let mut cluster = None;
    let (database_url, show_password) = match &args.database_url {
        Some(url) => {
            println!("  mirror database: DATABASE_URL");
            (url.clone(), false)
        }
        None => {
            let started = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || Cluster::start(&dir, run_as)).await??
            };
            println!(
                "  {} the PostgreSQL {} cluster in {} (port {})",
                if started.created {
                    "created"
                } else {
                    "reusing"
                },
                started.version,
                started.data_dir().display(),
                started.port()
            );
            let url = started.url(cluster::DATABASE);
            let started = cluster.insert(started);
            started.ensure_database().await?;
            (url, true)
        }
    };

    let outcome = demo(&args, &dir, &database_url, show_password, &shutdown).await;
    if let Some(mut cluster) = cluster {
        let stopped = tokio::task::spawn_blocking(move || cluster.stop()).await?;
        match (&outcome, stopped) {
            (_, Ok(())) => println!("stopped the demo cluster"),
            (Ok(()), Err(error)) => return Err(error),
            (Err(_), Err(error)) => eprintln!("{error:#}"),
        }
    }
    outcome
}

/// Everything between the database being there and Ctrl-C.
async fn demo(
    args: &DemoArgs,
    dir: &Path,
    database_url: &str,
    show_password: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let emulator = start_emulator(args).await?;

    let key_dir = dir.to_owned();
    let master_key = move || demo_master_key(&key_dir);
    register_org(database_url, &emulator, &master_key()?).await?;
    println!("  mirroring {} into schema {SCHEMA}", OBJECTS.join(", "));
    if let Some(file) = demo_key_file(dir) {
        println!(
            "  credentials sealed with the master key in {0} (other sfpg commands: \
             SFPG_MASTER_KEY_FILE={0})",
            file.display()
        );
    }
    let bulk = bulk::show_bulk(database_url, &emulator, ORG, &OBJECTS).await?;

    let metrics = observe::start_loopback(
        args.metrics_port,
        database::parse_url(database_url)?,
        shutdown,
    )
    .await?;
    println!("  metrics: http://{metrics}/metrics (status page: http://{metrics}/)");
    let services = Services::start(
        database_url,
        &master_key,
        Some(SyncSettings::default()),
        Some(&proxy_options(args)),
        shutdown.clone(),
    )
    .await?;
    let waiting = services.wait();
    tokio::pin!(waiting);

    let db = database::connect(database_url).await?;
    let started = Instant::now();
    let live = tokio::select! {
        live = wait_until_live(&db, shutdown) => live,
        stopped = &mut waiting => {
            stopped?;
            bail!("sfpg stopped before the backfill finished")
        }
    };
    let shown = match live {
        Ok(rows) => {
            if let Some(rows) = rows {
                println!(
                    "  all {} objects are live: {rows} rows mirrored in {:.1}s",
                    OBJECTS.len(),
                    started.elapsed().as_secs_f64()
                );
                bulk::print_bulk_jobs(&emulator, &bulk);
            }
            show_next(
                args,
                dir,
                database_url,
                show_password,
                shutdown,
                &db,
                &emulator,
            )
            .await
        }
        Err(error) => Err(error),
    };
    if let Err(error) = shown {
        shutdown.cancel();
        let _ = waiting.await;
        emulator.shutdown().await;
        return Err(error);
    }

    tokio::select! {
        stopped = &mut waiting => {
            emulator.shutdown().await;
            return stopped;
        }
        () = shutdown.cancelled() => println!("\nstopping the demo…"),
    }
    let stopped = waiting.await;
    emulator.shutdown().await;
    println!("stopped the proxy, the sync and the emulator");
    stopped
}

/// Once every object is live (unless the demo is stopping): what the stream does, and how
/// to connect to the proxy and to the emulated org.
async fn show_next(
    args: &DemoArgs,
    dir: &Path,
    database_url: &str,
    show_password: bool,
    shutdown: &CancellationToken,
    db: &tokio_postgres::Client,
    emulator: &RunningEmulator,
) -> anyhow::Result<()> {
    if !shutdown.is_cancelled() {
        println!("  {}", stream_note(db, shutdown).await);
    }
    if shutdown.is_cancelled() {
        return Ok(());
    }
    let mut config = database::parse_url(database_url)?;
    if show_password {
        // The demo's own cluster: its user connects as a client role, not as the superuser.
        config = app_role::app_role(db, &config, SCHEMA).await?;
    }
    let examples = Examples::prepare(db, &config, args.port).await?;
    print!("{}", examples.render(&config, args.port, show_password));
    print!("{}", LargeWrite::prepare(dir, SCHEMA)?.render());
    println!();
    print_emulator(emulator);
    println!("Press Ctrl-C to stop the demo.");
    Ok(())
}

/// What the demo's Change Data Capture stream does, once it is connected (or after a while,
/// why not): the demo streams by default.
async fn stream_note(db: &tokio_postgres::Client, shutdown: &CancellationToken) -> String {
    let deadline = Instant::now() + STREAM_WAIT;
    loop {
        let status = sfpg_control::streams::load_status(db).await;
        let stream = status
            .ok()
            .and_then(|mut all| all.pop().map(|(_, stream)| stream));
        match stream {
            Some(stream) if stream.state == sfpg_control::streams::StreamState::Connected => {
                return "streaming changes over Change Data Capture (/data/ChangeEvents): a \
                        change in the org reaches the mirror within a second; objects are \
                        still polled every 10 minutes as a safety net"
                    .to_owned();
            }
            Some(stream) if Instant::now() >= deadline || shutdown.is_cancelled() => {
                return format!(
                    "Change Data Capture stream not connected yet ({}); polling meanwhile",
                    stream.reason.unwrap_or_else(|| "catching up".to_owned())
                );
            }
            None if Instant::now() >= deadline || shutdown.is_cancelled() => {
                return "Change Data Capture stream not started yet; polling meanwhile".to_owned();
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// How long the demo waits for its stream to connect before saying it polls meanwhile.
const STREAM_WAIT: Duration = Duration::from_secs(15);

/// The emulated org, generated with `args.records` records.
async fn start_emulator(args: &DemoArgs) -> anyhow::Result<sfpg_emulator::http::RunningEmulator> {
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        transport: Transport::Http,
        daily_api_limit: DEMO_DAILY_API_LIMIT,
        org: OrgSource::Generated {
            records: args.records,
            seed: 1,
        },
        ..EmulatorConfig::default()
    })
    .await
    .context("cannot start the Salesforce emulator")?;
    println!(
        "  emulated Salesforce org: {} records at {}",
        args.records,
        emulator.instance_url()
    );
    Ok(emulator)
}

/// The demo's proxy: plain TCP on loopback, every other setting its default.
fn proxy_options(args: &DemoArgs) -> ProxyOptions {
    ProxyOptions {
        listen: format!("127.0.0.1:{}", args.port),
        tls_cert: None,
        tls_key: None,
        repair_every: Duration::from_secs(60),
        failures_retention: sfpg_proxy::DEFAULT_FAILURES_RETENTION,
        shutdown_grace: Duration::from_secs(10),
        session_threads: super::proxy::default_session_threads(),
        auth_timeout: sfpg_proxy::ClientLimits::DEFAULT_AUTH_TIMEOUT,
        max_client_connections: super::proxy::default_max_client_connections(),
        max_message_size: sfpg_proxy::ClientLimits::DEFAULT_MAX_MESSAGE_SIZE,
        failpoint: None,
    }
}

/// The demo's directory: `$XDG_DATA_HOME/sfpg/demo` or `~/.local/share/sfpg/demo`. Under
/// root, PostgreSQL runs as another user who must reach its data directory; when it cannot
/// reach that one (a home directory is usually closed to others), `/var/lib/sfpg/demo`.
fn demo_dir() -> anyhow::Result<(PathBuf, Option<ServerUser>)> {
    let data_home = match std::env::var_os("XDG_DATA_HOME") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".local/share"))
            .ok_or_else(|| anyhow!("neither XDG_DATA_HOME nor HOME is set"))?,
    };
    let mut dir = data_home.join("sfpg").join("demo");
    let run_as = cluster::server_user()?;
    if let Some(user) = run_as
        && !cluster::reachable_by(&dir, user)
    {
        dir = PathBuf::from("/var/lib/sfpg/demo");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The server's user needs to pass through to its data directory; nobody else does.
    let mode = if run_as.is_some() { 0o755 } else { 0o700 };
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", dir.display()))?;
    Ok((dir, run_as))
}

/// The master key the demo org's credentials are sealed with: the configured one if
/// `SFPG_MASTER_KEY` or `SFPG_MASTER_KEY_FILE` is set, else a key file in the demo's
/// directory.
fn demo_master_key(dir: &Path) -> anyhow::Result<MasterKey> {
    match demo_key_file(dir) {
        Some(file) => Ok(MasterKey::load_or_create_file(&file)?.0),
        None => load_or_create_master_key(),
    }
}

/// The demo's own key file, unless a key is configured.
fn demo_key_file(dir: &Path) -> Option<PathBuf> {
    let configured = [master_key::MASTER_KEY_ENV, master_key::MASTER_KEY_FILE_ENV]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    (!configured).then(|| dir.join("master.key"))
}

/// Registers the emulated org afresh: the emulator is a new org on every run (new port,
/// data generated again), so an earlier run's org and tables are removed first.
async fn register_org(
    database_url: &str,
    emulator: &RunningEmulator,
    key: &MasterKey,
) -> anyhow::Result<()> {
    let mut client = control_client(database_url).await?;
    if let Some(login_url) = orgs::login_url(&client, ORG).await? {
        // An org named `demo` that logs in anywhere but this machine is someone's real
        // mirror: removing it would drop its tables.
        if !is_emulated(&login_url) {
            return Err(UserError::new(format!(
                "this database already has an org named {ORG} that logs in at {login_url}, not an emulated org from an earlier demo; \
                 run the demo against another database (--database-url), or remove that org first (sfpg org remove {ORG})"
            ))
            .into());
        }
        admin::remove_org(&mut client, ORG, true)
            .await
            .map_err(user_facing)?;
    }
    let org = NewOrg {
        schema_name: SCHEMA.to_owned(),
        instance_url: Some(emulator.instance_url().to_owned()),
        // The emulator's own Pub/Sub API, so `auto` streams over it.
        pubsub_endpoint: Some(emulator.pubsub_endpoint())
            .filter(|endpoint| !endpoint.is_empty())
            .map(str::to_owned),
        ..NewOrg::client_credentials(
            ORG,
            emulator.login_url(),
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            &[&OBJECTS[..], &[EVENT]].concat(),
        )
    };
    orgs::insert(&mut client, &org, key)
        .await
        .map_err(user_facing)?;
    admin::set_rate_limit(&client, ORG, DEMO_RATE)
        .await
        .map_err(user_facing)?;
    Ok(())
}

/// Whether `login_url` is an emulator on this machine, as every demo's org is.
fn is_emulated(login_url: &str) -> bool {
    url::Url::parse(login_url).is_ok_and(|url| match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

/// Waits until every object of the demo org is live, showing the backfill's progress.
/// `Some(rows mirrored)`, or `None` when stopped first.
async fn wait_until_live(
    db: &tokio_postgres::Client,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<i64>> {
    let deadline = Instant::now() + BACKFILL_TIMEOUT;
    println!("  backfilling…");
    // First until each object is described (its backfill then has a size to show)…
    let described = |objects: &[ObjectStatus]| objects.iter().all(|o| o.phase != "describing");
    if !poll_objects(db, shutdown, deadline, described).await? {
        return Ok(None);
    }
    // …then the bars, until no backfill runs…
    follow_backfills(db, shutdown, true).await?;
    // …and the last word from the control schema.
    let live = |objects: &[ObjectStatus]| objects.iter().all(|o| o.phase == "live");
    if !poll_objects(db, shutdown, deadline, live).await? {
        return Ok(None);
    }
    let objects = demo_objects(db).await?;
    Ok(Some(objects.iter().map(|o| o.rows).sum()))
}

/// Polls the demo org's objects until `done` (true), or shutdown (false). An object that
/// pauses, or a deadline passed, is an error that says why.
async fn poll_objects(
    db: &tokio_postgres::Client,
    shutdown: &CancellationToken,
    deadline: Instant,
    done: impl Fn(&[ObjectStatus]) -> bool,
) -> anyhow::Result<bool> {
    loop {
        let objects = demo_objects(db).await?;
        if objects.len() == OBJECTS.len() && done(&objects) {
            return Ok(true);
        }
        if let Some(paused) = objects.iter().find(|o| o.paused_reason.is_some()) {
            bail!(
                "{} paused: {}",
                paused.object,
                paused.paused_reason.as_deref().unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let errors: Vec<String> = objects
                .iter()
                .filter_map(|o| Some(format!("{}: {}", o.object, o.last_error.as_ref()?)))
                .collect();
            bail!(
                "the backfill did not finish within {}; {}",
                humantime::format_duration(BACKFILL_TIMEOUT),
                if errors.is_empty() {
                    "see `sfpg status`".to_owned()
                } else {
                    errors.join("; ")
                }
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn demo_objects(db: &tokio_postgres::Client) -> anyhow::Result<Vec<ObjectStatus>> {
    let orgs = status::load(db)
        .await
        .context("cannot read the sync status")?;
    Ok(orgs
        .into_iter()
        .find(|org| org.name == ORG)
        // The platform event has no backfill: it streams from the start.
        .map(|org| {
            org.objects
                .into_iter()
                .filter(|o| !is_platform_event(&o.object))
                .collect()
        })
        .unwrap_or_default())
}

/// The statements to try, with the refusal the proxy really returned.
#[derive(Debug)]
struct Examples {
    select: String,
    update: String,
    insert: String,
    /// A platform event published through the proxy.
    event: String,
    /// SQLSTATE, message, and detail of the INSERT's refusal.
    refusal: (String, String, Option<String>),
}

impl Examples {
    async fn prepare(
        db: &tokio_postgres::Client,
        config: &tokio_postgres::Config,
        port: u16,
    ) -> anyhow::Result<Examples> {
        let account: String = db
            .query_opt(
                &format!(
                    "SELECT a.sfid FROM {SCHEMA}.account a
                      WHERE EXISTS (SELECT 1 FROM {SCHEMA}.contact c WHERE c.accountid = a.sfid)
                      ORDER BY a.sfid LIMIT 1"
                ),
                &[],
            )
            .await?
            .map(|row| row.get(0))
            .ok_or_else(|| anyhow!("the mirror has no account with contacts to show"))?;
        let examples = Examples {
            select: format!(
                "SELECT a.name AS account, c.firstname, c.lastname, c.email FROM {SCHEMA}.account a \
                 JOIN {SCHEMA}.contact c ON c.accountid = a.sfid ORDER BY a.name, c.lastname LIMIT 10;"
            ),
            update: format!(
                "UPDATE {SCHEMA}.account SET billingcity = 'Lisbon' WHERE sfid = '{account}';"
            ),
            insert: format!(
                "INSERT INTO {SCHEMA}.invoice__c (account__c, amount__c) VALUES ('{account}', -100);"
            ),
            event: format!(
                "INSERT INTO {SCHEMA}.order_event__e (order_number__c, quantity__c) VALUES ('42', 1);"
            ),
            refusal: (String::new(), String::new(), None),
        };
        let (client, connection) = through_proxy(config, port)
            .connect(NoTls)
            .await
            .context("cannot connect to the demo's proxy")?;
        tokio::spawn(connection);
        let rows = client.simple_query(&examples.select).await?;
        if !rows
            .iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        {
            bail!("the example join returned no rows");
        }
        let refused = match client.batch_execute(&examples.insert).await {
            Ok(()) => bail!("Salesforce accepted the invoice its validation rule should refuse"),
            Err(error) => error,
        };
        let db_error = refused
            .as_db_error()
            .ok_or_else(|| anyhow!("the example INSERT failed unexpectedly: {refused}"))?;
        Ok(Examples {
            refusal: (
                db_error.code().code().to_owned(),
                db_error.message().to_owned(),
                db_error.detail().map(str::to_owned),
            ),
            ..examples
        })
    }

    /// The psql line and the statements, as the user sees them.
    fn render(&self, config: &tokio_postgres::Config, port: u16, show_password: bool) -> String {
        let user = config.get_user().unwrap_or("postgres");
        let dbname = config.get_dbname().unwrap_or(user);
        let password = config
            .get_password()
            .filter(|_| show_password)
            .map(|p| format!(":{}", percent_encode(&String::from_utf8_lossy(p))))
            .unwrap_or_default();
        let (code, message, detail) = &self.refusal;
        let mut out = String::new();
        out.push_str("\nReady. Connect through the proxy with:\n\n");
        out.push_str(&format!(
            "psql postgres://{}{password}@127.0.0.1:{port}/{}\n",
            percent_encode(user),
            percent_encode(dbname)
        ));
        if !show_password && config.get_password().is_some() {
            out.push_str("  (with the password of DATABASE_URL)\n");
        }
        out.push_str("\nThen try:\n\n");
        out.push_str("  -- a join, read from the mirror:\n");
        out.push_str(&format!("  {}\n\n", self.select));
        out.push_str("  -- an update: Salesforce takes it first, then it commits in the mirror:\n");
        out.push_str(&format!("  {}\n\n", self.update));
        out.push_str(
            "  -- an invoice Salesforce's validation rule refuses, so nothing is written:\n",
        );
        out.push_str(&format!("  {}\n", self.insert));
        out.push_str(&format!("  ERROR:  {code}: {message}\n"));
        if let Some(detail) = detail {
            out.push_str(&format!("  DETAIL:  {detail}\n"));
        }
        out.push_str(
            "\n  -- a platform event: LISTEN order_event__e; in a second psql, then publish it here\n  \
             -- (the listener is told {\"replayid\": …, \"eventuuid\": …} once the org delivers it):\n",
        );
        out.push_str(&format!("  {}\n", self.event));
        out.push('\n');
        out
    }
}

/// `config`'s user, password and database, at the proxy on 127.0.0.1:`port`.
fn through_proxy(config: &tokio_postgres::Config, port: u16) -> tokio_postgres::Config {
    let mut proxy = tokio_postgres::Config::new();
    proxy.host("127.0.0.1").port(port);
    if let Some(user) = config.get_user() {
        proxy.user(user);
    }
    if let Some(password) = config.get_password() {
        proxy.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        proxy.dbname(dbname);
    }
    proxy.connect_timeout(Duration::from_secs(10));
    proxy
}

fn print_emulator(emulator: &RunningEmulator) {
    println!("The emulated org, for Salesforce clients:");
    println!("  instance URL:   {}", emulator.instance_url());
    if let Some(app) = emulator.apps().first() {
        println!("  client id:      {}", app.client_id);
        println!("  client secret:  {}", app.client_secret);
    }
    println!();
}

/// Percent-encodes all but the characters a URL's user, password and path may hold as
/// they are.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_are_percent_encoded() {
        assert_eq!(percent_encode("sfpg"), "sfpg");
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
