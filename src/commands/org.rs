//! `sfpg org …`: registering Salesforce orgs in the control schema.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use secrecy::SecretString;
use sfpg_schema::control::{AuthFlow, MasterKey, NewOrg, OrgError, OrgSecrets, orgs};

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
    Add(AddArgs),
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

    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

pub async fn run(args: OrgArgs) -> anyhow::Result<()> {
    match args.command {
        OrgCommand::Add(add) => add_org(add).await,
    }
}

async fn add_org(args: AddArgs) -> anyhow::Result<()> {
    let new = new_org(&args)?;
    let key = load_master_key()?;
    let mut client = database::connect(&args.database_url).await?;
    sfpg_schema::apply_control_schema(&mut client).await?;
    orgs::insert(&mut client, &new, &key)
        .await
        .map_err(user_facing)?;
    println!(
        "added org {} ({} flow) mirroring into schema {}",
        new.name, new.auth_flow, new.schema_name
    );
    if new.objects.is_empty() {
        println!("no objects yet: enable some with `sfpg org add … --objects Account,Contact`");
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
fn user_facing(error: OrgError) -> anyhow::Error {
    match error {
        OrgError::InvalidName(_)
        | OrgError::Exists(_)
        | OrgError::SchemaTaken(_)
        | OrgError::SchemaInUse { .. }
        | OrgError::NotFound(_)
        | OrgError::BatchSize(_) => UserError::new(error.to_string()).into(),
        other => other.into(),
    }
}
