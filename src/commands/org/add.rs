//! `sfpg org add`: registering an org. Every setting is checked before anything is stored
//! or sent: locally (URLs, API version, files, object names), then, unless --no-verify,
//! against the org (credentials, the API version it serves, the objects it has).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use sfpg_control::{AuthFlow, ControlError, NewOrg, OrgSecrets, orgs};
use sfpg_salesforce::{ApiVersion, JwtBearer, Token, check_ca_certificates_pem};

use crate::commands::org::verify::{self, log_in};
use crate::commands::org::{
    BulkThreshold, control_client, load_or_create_master_key, parse_bulk_threshold, user_facing,
};
use crate::errors::UserError;

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

    /// Objects counting at least this many records when their backfill starts are read
    /// through one Bulk API 2.0 query job instead of REST pages; so are larger incremental
    /// backlogs, reconciliations and formula refreshes. `off`: REST only.
    #[arg(long, default_value = "50000", value_parser = parse_bulk_threshold)]
    pub bulk_threshold: BulkThreshold,

    /// The PostgreSQL schema that holds the org's tables. Defaults to the org's name.
    #[arg(long)]
    pub schema: Option<String>,

    /// The Pub/Sub API endpoint the Change Data Capture stream uses (host:port, TLS; or an
    /// https:// or http:// URL, as the emulator prints). Defaults to Salesforce's global
    /// endpoint, api.pubsub.salesforce.com:7443.
    #[arg(long)]
    pub pubsub_endpoint: Option<String>,

    /// The Salesforce API version.
    #[arg(long, default_value = "62.0")]
    pub api_version: String,

    /// Register without logging in: the credentials, the API version and the objects are
    /// then not checked against the org.
    #[arg(long)]
    pub no_verify: bool,

    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

pub async fn add_org(args: AddArgs) -> anyhow::Result<()> {
    let mut new = new_org(&args)?;
    new.check().map_err(user_facing)?;
    let key = load_or_create_master_key()?;
    let mut client = control_client(&args.database_url).await?;
    // Refuse a duplicate before spending a login on it.
    if orgs::exists(&client, &new.name).await? {
        return Err(user_facing(ControlError::Exists(new.name.clone())));
    }
    let identity = if args.no_verify {
        None
    } else {
        Some(verify_against_org(&mut new).await?)
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

/// Logs in to the org `new` describes, then checks its API version and objects there,
/// taking the org's spelling of each object. With refresh-token rotation, logging in used
/// up the token given: the one Salesforce issued in its place goes into `new`, and a
/// refusal after the login says that the token given is spent.
async fn verify_against_org(new: &mut NewOrg) -> anyhow::Result<Arc<Token>> {
    let org = new.to_org();
    let (salesforce, token) = log_in(&org, None).await?;
    let rotated = token.refresh_token().is_some();
    if let Some(issued) = token.refresh_token() {
        new.secrets.refresh_token = Some(SecretString::from(issued.expose_secret().to_owned()));
    }
    let checked = async {
        verify::check_api_version(&salesforce, &org).await?;
        if new.objects.is_empty() {
            return Ok(Vec::new());
        }
        verify::check_objects(&salesforce, &new.name, &new.objects).await
    }
    .await;
    match checked {
        Ok(objects) => {
            if !objects.is_empty() {
                new.objects = objects;
            }
            Ok(token)
        }
        Err(error) if rotated => Err(error.context(format!(
            "org {} was not added, and logging in used up the refresh token given \
             (Salesforce rotates them): issue a new one",
            new.name
        ))),
        Err(error) => Err(error),
    }
}

/// The registration the flags describe, with its files read and checked; the rest of its
/// settings are checked by [`NewOrg::check`].
fn new_org(args: &AddArgs) -> anyhow::Result<NewOrg> {
    let secret = |s: &Option<String>| s.clone().map(SecretString::from);
    let auth_flow = auth_flow(args)?;
    let login_url = args
        .login_url
        .clone()
        .or_else(|| args.instance_url.clone())
        .ok_or_else(|| {
            UserError::new("give --instance-url (the org's My Domain URL) or --login-url")
        })?;
    let private_key_pem = match &args.jwt_key_file {
        Some(path) => {
            let pem = SecretString::from(read_file(path, "the JWT key file")?);
            JwtBearer::check_private_key(&pem).map_err(|e| {
                UserError::new(format!(
                    "--jwt-key-file {}: {}",
                    path.display(),
                    problem(&e)
                ))
            })?;
            Some(pem)
        }
        None => None,
    };
    let ca_cert_pem = match &args.ca_cert {
        Some(path) => {
            let pem = read_file(path, "the CA certificate")?;
            check_ca_certificates_pem(pem.as_bytes()).map_err(|e| {
                UserError::new(format!("--ca-cert {}: {}", path.display(), problem(&e)))
            })?;
            Some(pem)
        }
        None => None,
    };
    // Stored as Salesforce writes it (`62.0`, not `v62.0`).
    let api_version = args
        .api_version
        .parse::<ApiVersion>()
        .map_err(|e| UserError::new(format!("--api-version: {}", problem(&e))))?;
    let objects = if args.objects.is_empty() {
        Vec::new()
    } else {
        verify::object_names(&args.objects, "--objects")?
    };
    Ok(NewOrg {
        schema_name: args.schema.clone().unwrap_or_else(|| args.name.clone()),
        name: args.name.clone(),
        auth_flow,
        login_url,
        instance_url: args.instance_url.clone(),
        api_version: api_version.as_str().to_owned(),
        client_id: args.client_id.clone(),
        username: args.username.clone(),
        secrets: OrgSecrets {
            client_secret: secret(&args.client_secret),
            password: secret(&args.password),
            private_key_pem,
            refresh_token: secret(&args.refresh_token),
        },
        ca_cert_pem,
        batch_size: args.batch_size,
        bulk_threshold: args.bulk_threshold.0,
        objects,
        pubsub_endpoint: args
            .pubsub_endpoint
            .as_deref()
            .map(|endpoint| verify::pubsub_endpoint(endpoint, "--pubsub-endpoint"))
            .transpose()?,
    })
}

/// The auth flow the credentials given call for, refusing an incomplete set.
fn auth_flow(args: &AddArgs) -> anyhow::Result<AuthFlow> {
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
    Ok(auth_flow)
}

/// A file the user named, as text; one that is missing or unreadable is theirs to fix.
fn read_file(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("cannot read {what} {}: {e}", path.display())).into())
}

/// What is wrong with a setting, without the client's "invalid Salesforce configuration".
fn problem(error: &sfpg_salesforce::Error) -> String {
    match error {
        sfpg_salesforce::Error::Config(problem) => problem.clone(),
        other => other.to_string(),
    }
}
