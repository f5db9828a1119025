//! `sfpg org …`: registering Salesforce orgs in the control schema.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use sfpg_salesforce::{ErrorClass, Priority, RateLimiter, Token};
use sfpg_schema::control::{
    AuthFlow, MasterKey, NewOrg, Org, OrgError, OrgSecrets, RateLimit, admin, connect, orgs,
};

use crate::database;
use crate::errors::UserError;

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
    Add(Box<AddArgs>),
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
pub struct AddArgs {
    /// The org's name in sfpg: lower-case letters, digits and underscores.
    pub name: String,

    /// The org's My Domain URL (https://acme.my.salesforce.com); the login URL too, unless
    /// --login-url says otherwise.
    #[arg(long)]
    pub instance_url: Option<String>,

    /// Where to log in: https://login.salesforce.com, https://test.salesforce.com, or the
    /// org's My Domain URL. Defaults to --instance-url.
    #[arg(long)]
    pub login_url: Option<String>,

    /// The connected app's consumer key.
    #[arg(long)]
    pub client_id: String,

    /// The connected app's consumer secret.
    #[arg(long, env = "SFPG_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,

    /// The integration user, for the username-password and JWT bearer flows.
    #[arg(long)]
    pub username: Option<String>,

    /// The integration user's password (with its security token appended, if the org
    /// requires one).
    #[arg(long, env = "SFPG_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// A PEM private key for the JWT bearer flow.
    #[arg(long)]
    pub jwt_key_file: Option<PathBuf>,

    /// A refresh token for the refresh-token flow.
    #[arg(long, env = "SFPG_REFRESH_TOKEN", hide_env_values = true)]
    pub refresh_token: Option<String>,

    /// Objects to mirror, by API name, comma-separated (Account,Contact,Invoice__c).
    #[arg(long, value_delimiter = ',')]
    pub objects: Vec<String>,

    /// A PEM CA certificate to trust for this org (the emulator's, or a corporate proxy's).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,

    /// Records per query page while backfilling, 200 to 2000.
    #[arg(long, default_value_t = 200)]
    pub batch_size: u32,

    /// The PostgreSQL schema that holds the org's tables. Defaults to the org's name.
    #[arg(long)]
    pub schema: Option<String>,

    /// The Salesforce API version.
    #[arg(long, default_value = "62.0")]
    pub api_version: String,

    /// Register without logging in to check the credentials first.
    #[arg(long)]
    pub no_verify: bool,

    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

pub async fn run(args: OrgArgs) -> anyhow::Result<()> {
    match args.command {
        OrgCommand::Add(add) => add_org(*add).await,
        OrgCommand::Test(args) => test_org(args).await,
        OrgCommand::List(args) => list_orgs(args).await,
        OrgCommand::Show(args) => show_org(args).await,
        OrgCommand::Remove(args) => remove_org(args).await,
        OrgCommand::SetRateLimit(args) => set_rate_limit(args).await,
        OrgCommand::SetBudget(args) => set_budget(args).await,
    }
}

/// Connects and brings the control schema up to date, as every org command needs.
pub async fn control_client(database_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut client = database::connect(database_url).await?;
    sfpg_schema::apply_control_schema(&mut client).await?;
    Ok(client)
}

async fn list_orgs(args: DatabaseArgs) -> anyhow::Result<()> {
    let client = control_client(&args.database_url).await?;
    let rows = client
        .query(
            "SELECT o.name, o.schema_name, o.auth_flow, o.rate_requests, o.rate_period_ms,
                    o.max_daily_share, o.enabled,
                    (SELECT count(*) FROM sfpg.objects b WHERE b.org_name = o.name AND b.enabled)
               FROM sfpg.orgs o ORDER BY o.name",
            &[],
        )
        .await?;
    if rows.is_empty() {
        println!("no orgs yet: add one with `sfpg org add`");
        return Ok(());
    }
    println!(
        "{:<20} {:<20} {:<19} {:>7}  {:<18} {:>6}  ENABLED",
        "NAME", "SCHEMA", "FLOW", "OBJECTS", "RATE", "BUDGET"
    );
    for row in rows {
        let rate = describe_rate(row.get(3), row.get(4));
        let share: f32 = row.get(5);
        println!(
            "{:<20} {:<20} {:<19} {:>7}  {:<18} {:>5.0}%  {}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, i64>(7),
            rate,
            share * 100.0,
            if row.get::<_, bool>(6) { "yes" } else { "no" }
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
    let objects = client
        .query(
            "SELECT object_name, table_name, enabled, phase FROM sfpg.objects
              WHERE org_name = $1 ORDER BY object_name",
            &[&org.name],
        )
        .await?;
    println!("objects:");
    if objects.is_empty() {
        println!("  (none)");
    }
    for row in objects {
        let enabled: bool = row.get(2);
        println!(
            "  {:<30} table {}.{:<30} {}",
            row.get::<_, String>(0),
            org.schema_name,
            row.get::<_, String>(1),
            if enabled {
                row.get::<_, String>(3)
            } else {
                "disabled".to_owned()
            }
        );
    }
    Ok(())
}

/// An org's settings, one per line, with every secret shown only as set or not.
fn render_org(org: &Org) -> String {
    let masked = |s: &Option<SecretString>| if s.is_some() { "********" } else { "-" };
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
    let lines = [
        ("name", org.name.clone()),
        ("schema", org.schema_name.clone()),
        ("auth flow", org.auth_flow.to_string()),
        ("login url", org.login_url.clone()),
        ("instance url", or_dash(&org.instance_url)),
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

fn describe_rate(requests: i32, period_ms: i64) -> String {
    let period = Duration::from_millis(u64::try_from(period_ms).unwrap_or(0));
    format!("{requests}/{}", humantime::format_duration(period))
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

async fn add_org(args: AddArgs) -> anyhow::Result<()> {
    let new = new_org(&args)?;
    let key = load_master_key()?;
    let mut client = control_client(&args.database_url).await?;
    // Refuse a duplicate before spending a login on it.
    if client
        .query_opt("SELECT 1 FROM sfpg.orgs WHERE name = $1", &[&new.name])
        .await?
        .is_some()
    {
        return Err(user_facing(OrgError::Exists(new.name.clone())));
    }
    let mut new = new;
    let identity = if args.no_verify {
        None
    } else {
        let (_, token) = log_in(&new.to_org(), None).await?;
        // With refresh-token rotation, logging in used up the token given: store the one
        // Salesforce issued in its place.
        if let Some(rotated) = token.refresh_token() {
            new.secrets.refresh_token =
                Some(SecretString::from(rotated.expose_secret().to_owned()));
        }
        Some(token)
    };
    orgs::insert(&mut client, &new, &key)
        .await
        .map_err(user_facing)?;
    if let Some(token) = &identity {
        orgs::record_identity(
            &client,
            &new.name,
            token.org_id(),
            token.instance_url().as_str(),
        )
        .await?;
        println!(
            "logged in to org {} at {}",
            token.org_id().unwrap_or("(id not given)"),
            token.instance_url()
        );
    }
    println!(
        "added org {} ({} flow) mirroring into schema {}",
        new.name, new.auth_flow, new.schema_name
    );
    if new.objects.is_empty() {
        println!(
            "no objects yet: enable some with `sfpg objects enable {} Account Contact`",
            new.name
        );
    } else {
        println!("objects: {}", new.objects.join(", "));
    }
    Ok(())
}

fn new_org(args: &AddArgs) -> anyhow::Result<NewOrg> {
    let secret = |s: &Option<String>| s.clone().map(SecretString::from);
    let auth_flow = match (
        &args.username,
        &args.password,
        &args.jwt_key_file,
        &args.refresh_token,
    ) {
        (_, _, Some(_), _) => AuthFlow::JwtBearer,
        (_, _, _, Some(_)) => AuthFlow::RefreshToken,
        (Some(_), Some(_), _, _) => AuthFlow::Password,
        (Some(_), None, _, _) | (None, Some(_), _, _) => {
            return Err(UserError::new("--username and --password go together").into());
        }
        (None, None, None, None) => AuthFlow::ClientCredentials,
    };
    if auth_flow == AuthFlow::JwtBearer && args.username.is_none() {
        return Err(UserError::new("the JWT bearer flow needs --username").into());
    }
    if matches!(auth_flow, AuthFlow::ClientCredentials | AuthFlow::Password)
        && args.client_secret.is_none()
    {
        return Err(UserError::new(format!(
            "the {auth_flow} flow needs --client-secret (or SFPG_CLIENT_SECRET)"
        ))
        .into());
    }
    let login_url = args
        .login_url
        .clone()
        .or_else(|| args.instance_url.clone())
        .ok_or_else(|| {
            UserError::new("give --instance-url (the org's My Domain URL) or --login-url")
        })?;
    let private_key_pem = match &args.jwt_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the JWT key file {}", path.display()))?,
        ),
        None => None,
    };
    let ca_cert_pem = match &args.ca_cert {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?,
        ),
        None => None,
    };
    let objects: Vec<String> = args
        .objects
        .iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    Ok(NewOrg {
        schema_name: args.schema.clone().unwrap_or_else(|| args.name.clone()),
        name: args.name.clone(),
        auth_flow,
        login_url,
        instance_url: args.instance_url.clone(),
        api_version: args.api_version.clone(),
        client_id: args.client_id.clone(),
        username: args.username.clone(),
        secrets: OrgSecrets {
            client_secret: secret(&args.client_secret),
            password: secret(&args.password),
            private_key_pem: private_key_pem.map(SecretString::from),
            refresh_token: secret(&args.refresh_token),
        },
        ca_cert_pem,
        batch_size: args.batch_size,
        objects,
    })
}

/// Logs in to `org` once; refused credentials are the user's to fix (exit 2), an
/// unreachable Salesforce is not. A stored org (`stored`: its control database and key)
/// saves a refresh token that Salesforce rotates.
async fn log_in(
    org: &Org,
    stored: Option<(&tokio_postgres::Config, &MasterKey)>,
) -> anyhow::Result<(sfpg_salesforce::Client, std::sync::Arc<Token>)> {
    let limiter = RateLimiter::new(connect::rate(org)?);
    let client = match stored {
        Some((database, key)) => connect::stored_client(org, limiter, database, key)?,
        None => connect::client(org, limiter)?,
    }
    .with_priority(Priority::Interactive);
    match client.token().await {
        Ok(token) => Ok((client, token)),
        Err(error) if error.class() == ErrorClass::Auth => Err(UserError::new(format!(
            "Salesforce refused the credentials of org {} at {}: {error}",
            org.name, org.login_url
        ))
        .into()),
        Err(error) => Err(anyhow::Error::new(error).context(format!(
            "cannot log in to org {} at {}",
            org.name, org.login_url
        ))),
    }
}

async fn test_org(args: NamedOrgArgs) -> anyhow::Result<()> {
    let db = control_client(&args.database.database_url).await?;
    let key = load_master_key()?;
    let org = orgs::load(&db, &args.name, &key)
        .await
        .map_err(user_facing)?;
    let database = database::parse_url(&args.database.database_url)?;
    let (client, token) = log_in(&org, Some((&database, &key))).await?;
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
            Some(o) if !o.queryable => "not queryable: cannot be mirrored",
            Some(o) if !o.replicateable => "not replicateable: cannot be mirrored",
            Some(_) => "can be mirrored",
        };
        println!("  {object:<30} {verdict}");
    }
    Ok(())
}

/// The master key, telling the user once when a new key file was created.
pub fn load_master_key() -> anyhow::Result<MasterKey> {
    let (key, source) = MasterKey::load_or_create()?;
    if let sfpg_schema::control::master_key::KeySource::CreatedFile(path) = source {
        eprintln!(
            "created a new master key at {} (mode 0600); back it up: stored credentials \
             cannot be read without it",
            path.display()
        );
    }
    Ok(key)
}

/// Org errors caused by what the user typed exit with code 2.
pub fn user_facing(error: OrgError) -> anyhow::Error {
    match error {
        OrgError::InvalidName(_)
        | OrgError::Exists(_)
        | OrgError::SchemaTaken(_)
        | OrgError::SchemaInUse { .. }
        | OrgError::NotFound(_)
        | OrgError::BatchSize(_)
        | OrgError::BadRate
        | OrgError::BadShare
        | OrgError::UnknownObject { .. } => UserError::new(error.to_string()).into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
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
    fn shares_parse_from_percentages() {
        assert_eq!(parse_share("80%").unwrap(), 0.8);
        assert_eq!(parse_share(" 100 %").unwrap(), 1.0);
        for bad in ["80", "0%", "101%", "-5%", "lots%"] {
            assert!(parse_share(bad).unwrap_err().is::<UserError>(), "{bad}");
        }
    }
}
