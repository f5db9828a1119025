//! `sfpg org …`: registering Salesforce orgs in the control schema.

use clap::{Args, Subcommand};
use secrecy::SecretString;
use sfpg_control::{ControlError, MasterKey, Org, RateLimit, admin, objects, orgs};
use sfpg_salesforce::redact_url;

use crate::database;
use crate::errors::UserError;

pub mod add;
pub mod cdc;
pub mod verify;

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(subcommand)]
    pub command: OrgCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Register an org to mirror. The auth flow follows from the credentials given:
    /// --username/--password for username-password, --jwt-key-file for JWT bearer,
    /// --refresh-token for refresh token, otherwise client credentials.
    Add(Box<add::AddArgs>),
    /// Log in to an org, then show its id, API usage, and which objects can be mirrored.
    Test(NamedOrgArgs),
    /// List registered orgs.
    List(DatabaseArgs),
    /// Show one org's settings and objects; credentials are masked.
    Show(NamedOrgArgs),
    /// Remove an org and its sync state; its tables stay unless --drop-schema is given.
    Remove(RemoveArgs),
    /// Set how fast background sync may call the org, e.g. `--requests 1 --per 3s`.
    SetRateLimit(SetRateLimitArgs),
    /// Set the share of the org's daily API allocation background sync may use, e.g. 80%.
    SetBudget(SetBudgetArgs),
    /// Set how many records an object must count for its backfill to go through a Bulk API
    /// 2.0 query job (and larger backlogs, reconciliations and formula refreshes), or `off`.
    SetBulkThreshold(SetBulkThresholdArgs),
    /// Turn the org's Change Data Capture stream `on` (the default) or `off`; a running sync
    /// follows at once.
    SetCdc(cdc::SetCdcArgs),
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Args)]
pub struct NamedOrgArgs {
    /// The org's name in sfpg.
    pub name: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The org's name in sfpg.
    pub name: String,
    /// Also drop the org's schema with its mirrored tables.
    #[arg(long)]
    pub drop_schema: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct SetRateLimitArgs {
    /// The org's name in sfpg.
    pub name: String,
    /// How many requests…
    #[arg(long, allow_negative_numbers = true)]
    pub requests: i64,
    /// …per how long: `3s`, `1m`, `500ms`.
    #[arg(long)]
    pub per: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct SetBudgetArgs {
    /// The org's name in sfpg.
    pub name: String,
    /// The most of the org's daily API allocation background sync may use, e.g. `80%`;
    /// above it polling pauses until the org's usage falls again.
    #[arg(long)]
    pub max_daily_share: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct SetBulkThresholdArgs {
    /// The org's name in sfpg.
    pub name: String,
    /// A number of records (at least 1), or `off` for REST only.
    #[arg(value_parser = parse_bulk_threshold)]
    pub threshold: BulkThreshold,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// A bulk threshold as typed: a number of records, or `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkThreshold(pub Option<u64>);

impl std::fmt::Display for BulkThreshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(records) => write!(f, "{records} records"),
            None => f.write_str("off"),
        }
    }
}

/// `50000`, `50_000` or `off`.
pub fn parse_bulk_threshold(text: &str) -> Result<BulkThreshold, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(BulkThreshold(None));
    }
    text.replace('_', "")
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && i64::try_from(*n).is_ok())
        .map(|n| BulkThreshold(Some(n)))
        .ok_or_else(|| format!("{text:?} is not a number of records of at least 1, or off"))
}

pub async fn run(args: OrgArgs) -> anyhow::Result<()> {
    match args.command {
        OrgCommand::Add(args) => add::add_org(*args).await,
        OrgCommand::Test(args) => test_org(args).await,
        OrgCommand::List(args) => list_orgs(args).await,
        OrgCommand::Show(args) => show_org(args).await,
        OrgCommand::Remove(args) => remove_org(args).await,
        OrgCommand::SetRateLimit(args) => set_rate_limit(args).await,
        OrgCommand::SetBudget(args) => set_budget(args).await,
        OrgCommand::SetBulkThreshold(args) => set_bulk_threshold(args).await,
        OrgCommand::SetCdc(args) => cdc::set_cdc(args).await,
    }
}

/// Connects and brings the control schema up to date, as every org command needs.
pub async fn control_client(database_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut client = database::connect(database_url).await?;
    sfpg_control::apply_control_schema(&mut client).await?;
    Ok(client)
}

async fn list_orgs(args: DatabaseArgs) -> anyhow::Result<()> {
    let client = control_client(&args.database_url).await?;
    let summaries = orgs::summaries(&client).await?;
    if summaries.is_empty() {
        println!("no orgs yet: add one with `sfpg org add`");
        return Ok(());
    }
    println!(
        "{:<20} {:<20} {:<19} {:>7}  {:<18} {:>6}  ENABLED",
        "NAME", "SCHEMA", "FLOW", "OBJECTS", "RATE", "BUDGET"
    );
    for org in summaries {
        let rate = format!(
            "{}/{}",
            org.rate_limit.requests,
            humantime::format_duration(org.rate_limit.period)
        );
        println!(
            "{:<20} {:<20} {:<19} {:>7}  {:<18} {:>5.0}%  {}",
            org.name,
            org.schema,
            org.auth_flow.as_str(),
            org.objects,
            rate,
            org.max_daily_share * 100.0,
            if org.enabled { "yes" } else { "no" }
        );
    }
    Ok(())
}

async fn show_org(args: NamedOrgArgs) -> anyhow::Result<()> {
    let client = control_client(&args.database.database_url).await?;
    let key = load_master_key()?;
    let org = orgs::load(&client, &args.name, &key)
        .await
        .map_err(user_facing)?;
    print!("{}", render_org(&org));
    let objects = objects::summaries(&client, &org.name).await?;
    println!("objects:");
    if objects.is_empty() {
        println!("  (none)");
    }
    for object in objects {
        println!(
            "  {:<30} table {}.{:<30} {}",
            object.object,
            org.schema_name,
            object.table,
            if object.enabled {
                object.phase.as_str()
            } else {
                "disabled"
            }
        );
    }
    Ok(())
}

/// An org's settings, one per line, with every secret shown only as set or not, and URLs
/// without a user name or password.
fn render_org(org: &Org) -> String {
    let masked = |s: &Option<SecretString>| if s.is_some() { "********" } else { "-" };
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
    // An org stored before URLs with a user name and password were refused may hold one.
    let url = |s: &str| redact_url(s).into_owned();
    let lines = [
        ("name", org.name.clone()),
        ("schema", org.schema_name.clone()),
        ("auth flow", org.auth_flow.to_string()),
        ("login url", url(&org.login_url)),
        (
            "instance url",
            org.instance_url
                .as_deref()
                .map_or_else(|| "-".to_owned(), url),
        ),
        ("api version", org.api_version.clone()),
        ("org id", or_dash(&org.org_id)),
        ("client id", org.client_id.clone()),
        (
            "client secret",
            masked(&org.secrets.client_secret).to_owned(),
        ),
        ("username", or_dash(&org.username)),
        ("password", masked(&org.secrets.password).to_owned()),
        (
            "jwt private key",
            masked(&org.secrets.private_key_pem).to_owned(),
        ),
        (
            "refresh token",
            masked(&org.secrets.refresh_token).to_owned(),
        ),
        (
            "ca certificate",
            if org.ca_cert_pem.is_some() {
                "custom"
            } else {
                "system roots"
            }
            .to_owned(),
        ),
        ("batch size", org.batch_size.to_string()),
        (
            "bulk threshold",
            BulkThreshold(org.bulk_threshold).to_string(),
        ),
        (
            "rate limit",
            format!(
                "{} request(s) per {}",
                org.rate_limit.requests,
                humantime::format_duration(org.rate_limit.period)
            ),
        ),
        (
            "daily budget",
            format!(
                "{:.0}% of the org's API allocation",
                org.max_daily_share * 100.0
            ),
        ),
        ("enabled", if org.enabled { "yes" } else { "no" }.to_owned()),
    ];
    lines
        .iter()
        .map(|(label, value)| format!("{label:<16} {value}\n"))
        .collect()
}

async fn remove_org(args: RemoveArgs) -> anyhow::Result<()> {
    let mut client = control_client(&args.database.database_url).await?;
    admin::remove_org(&mut client, &args.name, args.drop_schema)
        .await
        .map_err(user_facing)?;
    if args.drop_schema {
        println!("removed org {} and dropped its schema", args.name);
    } else {
        println!("removed org {} (its tables were kept)", args.name);
    }
    Ok(())
}

async fn set_rate_limit(args: SetRateLimitArgs) -> anyhow::Result<()> {
    let rate = parse_rate(args.requests, &args.per)?;
    let client = control_client(&args.database.database_url).await?;
    admin::set_rate_limit(&client, &args.name, rate)
        .await
        .map_err(user_facing)?;
    println!(
        "org {}: at most {} request(s) per {}",
        args.name,
        rate.requests,
        humantime::format_duration(rate.period)
    );
    Ok(())
}

fn parse_rate(requests: i64, per: &str) -> anyhow::Result<RateLimit> {
    let requests = u32::try_from(requests)
        .ok()
        .filter(|r| *r > 0)
        .ok_or_else(|| UserError::new(format!("--requests must be at least 1, got {requests}")))?;
    let period = humantime::parse_duration(per.trim()).map_err(|e| {
        UserError::new(format!(
            "--per {per:?} is not a duration like 3s, 1m or 500ms: {e}"
        ))
    })?;
    if period.is_zero() {
        return Err(UserError::new("--per must be longer than 0").into());
    }
    Ok(RateLimit { requests, period })
}

async fn set_budget(args: SetBudgetArgs) -> anyhow::Result<()> {
    let share = parse_share(&args.max_daily_share)?;
    let client = control_client(&args.database.database_url).await?;
    admin::set_max_daily_share(&client, &args.name, share)
        .await
        .map_err(user_facing)?;
    println!(
        "org {}: background sync pauses above {:.0}% of the daily API allocation",
        args.name,
        share * 100.0
    );
    Ok(())
}

async fn set_bulk_threshold(args: SetBulkThresholdArgs) -> anyhow::Result<()> {
    let client = control_client(&args.database.database_url).await?;
    admin::set_bulk_threshold(&client, &args.name, args.threshold.0)
        .await
        .map_err(user_facing)?;
    match args.threshold.0 {
        Some(records) => println!(
            "org {}: objects of at least {records} records are read through Bulk API 2.0 query jobs",
            args.name
        ),
        None => println!("org {}: Bulk API 2.0 off, REST only", args.name),
    }
    Ok(())
}

/// `80%` → 0.8.
fn parse_share(text: &str) -> anyhow::Result<f32> {
    let bad = || {
        UserError::new(format!(
            "--max-daily-share {text:?} must be a percentage above 0% and at most 100%, like 80%"
        ))
    };
    let number = text.trim().strip_suffix('%').ok_or_else(bad)?;
    let percent: f32 = number.trim().parse().map_err(|_| bad())?;
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(bad().into());
    }
    Ok(percent / 100.0)
}

async fn test_org(args: NamedOrgArgs) -> anyhow::Result<()> {
    let db = control_client(&args.database.database_url).await?;
    let key = load_master_key()?;
    let org = orgs::load(&db, &args.name, &key)
        .await
        .map_err(user_facing)?;
    let database = database::parse_url(&args.database.database_url)?;
    let (client, token) = verify::log_in(&org, Some((&database, &key))).await?;
    orgs::record_identity(
        &db,
        &org.name,
        token.org_id(),
        token.instance_url().as_str(),
    )
    .await?;
    println!("org id        {}", token.org_id().unwrap_or("(not given)"));
    println!("user id       {}", token.user_id().unwrap_or("(not given)"));
    println!("instance url  {}", token.instance_url());

    // Before the describe, which an unserved version would fail with a bare 404.
    verify::check_api_version(&client, &org).await?;
    let global = client.describe_global().await?;
    if let Some(usage) = client.api_usage() {
        println!(
            "api usage     {} of {} requests in the last 24 hours ({:.1}%)",
            usage.api.used,
            usage.api.max,
            usage.api.fraction_used() * 100.0
        );
    }
    let replicable: Vec<&str> = global
        .sobjects
        .iter()
        .filter(|o| o.replicateable && o.queryable)
        .map(|o| o.name.as_str())
        .collect();
    println!(
        "replicable    {} objects: {}",
        replicable.len(),
        replicable.join(", ")
    );
    let registered = orgs::enabled_objects(&db, &org.name).await?;
    if !registered.is_empty() {
        println!("mirrored objects:");
    }
    for object in registered {
        let found = global
            .sobjects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&object));
        let verdict = match found {
            None => "not found in the org (or not visible to this user)",
            // Not queryable by nature: its table holds the events the stream receives, and
            // an INSERT through the proxy publishes one.
            Some(o) if sfpg_control::events::is_platform_event(&o.name) => {
                "platform event: subscribed to by the stream, published through the proxy"
            }
            Some(o) if !o.queryable => "not queryable: cannot be mirrored",
            Some(o) if !o.replicateable => "not replicateable: cannot be mirrored",
            Some(_) => "can be mirrored",
        };
        println!("  {object:<30} {verdict}");
    }
    Ok(())
}

/// The master key the stored credentials were sealed with, which must exist.
pub fn load_master_key() -> anyhow::Result<MasterKey> {
    Ok(MasterKey::load()?.0)
}

/// The master key, created if there is none (for `org add` and the services, which may
/// start before any org is added), telling the user once when a new key file was created.
pub fn load_or_create_master_key() -> anyhow::Result<MasterKey> {
    let (key, source) = MasterKey::load_or_create()?;
    if let sfpg_control::master_key::KeySource::CreatedFile(path) = source {
        eprintln!(
            "created a new master key at {} (mode 0600); back it up: stored credentials \
             cannot be read without it",
            path.display()
        );
    }
    Ok(key)
}

/// Org errors caused by what the user typed exit with code 2.
pub fn user_facing(error: ControlError) -> anyhow::Error {
    match error {
        ControlError::InvalidName(_)
        | ControlError::InvalidSchemaName(_)
        | ControlError::Exists(_)
        | ControlError::SchemaTaken(_)
        | ControlError::SchemaInUse { .. }
        | ControlError::NotFound(_)
        | ControlError::BatchSize(_)
        | ControlError::BadRate
        | ControlError::BadShare
        | ControlError::BadBulkThreshold
        | ControlError::UnknownObject { .. }
        | ControlError::InvalidObjectName(_)
        | ControlError::Setting { .. } => UserError::new(error.to_string()).into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rates_parse_from_counts_and_durations() {
        let rate = parse_rate(1, "3s").unwrap();
        assert_eq!((rate.requests, rate.period), (1, Duration::from_secs(3)));
        let rate = parse_rate(100, "1m").unwrap();
        assert_eq!((rate.requests, rate.period), (100, Duration::from_secs(60)));
        for (requests, per) in [(0, "3s"), (-1, "3s"), (5, "soon"), (5, "0s"), (5, "")] {
            let error = parse_rate(requests, per).unwrap_err();
            assert!(error.is::<UserError>(), "{requests} per {per:?}");
        }
    }

    #[test]
    fn bulk_thresholds_parse_from_counts_or_off() {
        assert_eq!(
            parse_bulk_threshold("50000"),
            Ok(BulkThreshold(Some(50_000)))
        );
        assert_eq!(
            parse_bulk_threshold("1_000"),
            Ok(BulkThreshold(Some(1_000)))
        );
        assert_eq!(parse_bulk_threshold("OFF"), Ok(BulkThreshold(None)));
        for bad in ["0", "-5", "many", "", "99999999999999999999"] {
            assert!(parse_bulk_threshold(bad).is_err(), "{bad:?}");
        }
        assert_eq!(BulkThreshold(Some(10)).to_string(), "10 records");
        assert_eq!(BulkThreshold(None).to_string(), "off");
    }

    #[test]
    fn shares_parse_from_percentages() {
        assert_eq!(parse_share("80%").unwrap(), 0.8);
        assert_eq!(parse_share(" 100 %").unwrap(), 1.0);
        for bad in ["80", "0%", "101%", "-5%", "lots%"] {
            assert!(parse_share(bad).unwrap_err().is::<UserError>(), "{bad}");
        }
    }
}
