//! `sfpg emulator`: serves a generated Salesforce org on this machine, for trying sfpg
//! out and for manual testing. It prints where it listens and how to log in, and runs
//! until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use sfpg_emulator::events::Selection;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator, Transport, start};

/// Serve a local Salesforce emulator with generated data.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8443", env = "SFPG_EMULATOR_LISTEN")]
    pub listen: SocketAddr,

    /// Serve plain HTTP instead of HTTPS with a certificate generated at start.
    #[arg(long)]
    pub http: bool,

    /// Host name to put in instance_url and the certificate, when clients reach the
    /// emulator by another name than the listening address (e.g. a container name).
    #[arg(long)]
    pub public_host: Option<String>,

    /// Where to write the PEM of the certificate authority clients must trust (HTTPS
    /// only); by default a file in the system's temporary directory.
    #[arg(long)]
    pub cert_path: Option<PathBuf>,

    /// How many records to generate (accounts with their contacts, opportunities and
    /// invoices, plus leads and products).
    #[arg(long, default_value_t = 10_000)]
    pub records: usize,

    /// Instead of --records' mix: N Accounts, N Contacts and N Opportunities (one of each
    /// per Account) in every org.
    #[arg(long, value_name = "N")]
    pub records_each: Option<usize>,

    /// How many independent orgs to serve, each with its own login, data, limits,
    /// request log and events (org n's admin API is under /__emulator/orgs/n/).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub orgs: u32,

    /// Seed of the data generator; the same seed gives the same org.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// The org's daily API allocation.
    #[arg(long, default_value_t = 15_000)]
    pub daily_api_limit: u64,

    /// How long an access token works, e.g. `90s`, `30m`, `2h`, `1d`.
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub session_lifetime: Duration,

    /// How long a Bulk API job takes from UploadComplete to its end, e.g. `500ms`, `0`.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub bulk_processing_delay: Duration,

    /// The objects selected for Change Data Capture: `all`, `none`, or a list such as
    /// `Account,Contact` (changeable later through the admin API).
    #[arg(long, default_value = "all")]
    pub cdc_entities: Selection,

    /// How long change events stay replayable, e.g. `72h`.
    #[arg(long, default_value = "72h", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// How many changes one transaction publishes before the rest become one
    /// GAP_OVERFLOW event per object.
    #[arg(long, default_value_t = 100_000)]
    pub cdc_overflow_threshold: usize,

    /// How long a CometD /meta/connect is held when no event comes, e.g. `110s`.
    #[arg(long, default_value = "110s", value_parser = parse_duration)]
    pub cometd_connect_timeout: Duration,

    /// Address and port of the Pub/Sub API (gRPC); by default a free port on the
    /// `--listen` address. TLS with the same certificate, plain with `--http`.
    #[arg(long, env = "SFPG_EMULATOR_PUBSUB_LISTEN")]
    pub pubsub_listen: Option<SocketAddr>,

    /// How long a Pub/Sub stream without events waits before an empty keepalive batch,
    /// e.g. `270s`.
    #[arg(long, default_value = "270s", value_parser = parse_duration)]
    pub pubsub_keepalive: Duration,

    /// How long a Pub/Sub stream with nothing requested stays open, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub pubsub_idle_close: Duration,
}

/// Starts the emulator, prints how to reach it, and serves until Ctrl-C.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let defaults = EmulatorConfig::default();
    let config = EmulatorConfig {
        listen: args.listen,
        transport: if args.http {
            Transport::Http
        } else {
            Transport::Https {
                cert_path: args.cert_path.clone(),
            }
        },
        public_host: args.public_host.clone(),
        pubsub_listen: args.pubsub_listen,
        pubsub_keepalive: args.pubsub_keepalive,
        pubsub_idle_close: args.pubsub_idle_close,
        session_lifetime: args.session_lifetime,
        daily_api_limit: args.daily_api_limit,
        bulk_processing_delay: args.bulk_processing_delay,
        cdc_entities: args.cdc_entities.clone(),
        event_retention: args.event_retention,
        cdc_overflow_threshold: args.cdc_overflow_threshold,
        cometd_connect_timeout: args.cometd_connect_timeout,
        org: match args.records_each {
            Some(each) => OrgSource::Each {
                each,
                seed: args.seed,
            },
            None => OrgSource::Generated {
                records: args.records,
                seed: args.seed,
            },
        },
        orgs: args.orgs as usize,
        ..defaults
    };
    let emulator = start(config)
        .await
        .with_context(|| format!("cannot start the emulator on {}", args.listen))?;

    if args.orgs > 1 {
        print_orgs(&emulator, &args);
    } else {
        print_org(&emulator, &args);
    }
    println!("Press Ctrl-C to stop.");

    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    println!("Stopping.");
    emulator.shutdown().await;
    Ok(())
}

/// What the records of each org are.
fn records_text(args: &EmulatorArgs) -> String {
    match args.records_each {
        Some(each) => format!("{each} Accounts, Contacts and Opportunities each"),
        None => format!("{} records", args.records),
    }
}

/// Where the orgs are, and each org's login, one line each.
fn print_orgs(emulator: &RunningEmulator, args: &EmulatorArgs) {
    println!(
        "Salesforce emulator ready: {} orgs ({} per org, seeds from {})",
        args.orgs,
        records_text(args),
        args.seed
    );
    println!("  instance URL:   {}", emulator.instance_url());
    println!("  token endpoint: {}", emulator.token_url());
    if let Some(path) = emulator.cert_path() {
        println!("  certificate:    {}", path.display());
    }
    println!("  streaming:      {}/cometd/62.0", emulator.instance_url());
    println!("  pub/sub (gRPC): {}", emulator.pubsub_endpoint());
    println!(
        "  orgs (JSON):    {}/__emulator/orgs",
        emulator.instance_url()
    );
    println!(
        "  org  org id              client id / client secret / username / password  admin API"
    );
    for org in emulator.org_logins() {
        println!(
            "  {:<4} {} {} {} {} {}  /__emulator/orgs/{}/",
            org.number,
            org.org_id,
            org.client_id,
            org.client_secret,
            org.username,
            org.password,
            org.number
        );
    }
}

/// Where the one org is and how to log in, as always printed.
fn print_org(emulator: &RunningEmulator, args: &EmulatorArgs) {
    match args.records_each {
        Some(_) => println!(
            "Salesforce emulator ready ({}, seed {})",
            records_text(args),
            args.seed
        ),
        None => println!(
            "Salesforce emulator ready ({} records, seed {})",
            args.records, args.seed
        ),
    }
    println!("  instance URL:   {}", emulator.instance_url());
    println!("  login URL:      {}", emulator.login_url());
    println!("  token endpoint: {}", emulator.token_url());
    for app in emulator.apps() {
        println!("  client id:      {}", app.client_id);
        println!("  client secret:  {}", app.client_secret);
    }
    for user in emulator.users() {
        println!("  username:       {}", user.username);
        println!("  password:       {}", user.password);
    }
    if let Some(path) = emulator.cert_path() {
        println!("  certificate:    {}", path.display());
    }
    println!("  admin API:      {}/__emulator/", emulator.instance_url());
    println!("  streaming:      {}/cometd/62.0", emulator.instance_url());
    println!("  pub/sub (gRPC): {}", emulator.pubsub_endpoint());
}

/// `90s`, `30m`, `2h`, `1d`, `250ms`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 2h or 1d"))?;
    let seconds = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(60 * 60),
        "d" => seconds(24 * 60 * 60),
        other => Err(format!(
            "unknown unit {other:?} in {text:?}; use ms, s, m, h or d"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("h").is_err());
    }
}
