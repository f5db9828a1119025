//! Getting an access token: the four OAuth 2.0 flows sfpg supports, one module each, and the
//! token endpoint they share (`POST {login}/services/oauth2/token`, reference §1).

mod client_credentials;
mod jwt_bearer;
mod password;
mod refresh_token;
mod store;
mod token;

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument;
use url::Url;

pub use client_credentials::ClientCredentials;
pub use jwt_bearer::JwtBearer;
pub use password::Password;
pub use refresh_token::RefreshToken;
pub use store::{RefreshTokenStore, StoreError};
pub use token::Token;

use crate::error::{Endpoint, Error, Result};

/// The token endpoint's path.
const TOKEN_PATH: &str = "/services/oauth2/token";

/// Which OAuth flow a token was requested with; named in authentication errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFlow {
    /// `grant_type=password`.
    Password,
    /// `grant_type=client_credentials`.
    ClientCredentials,
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.
    JwtBearer,
    /// `grant_type=refresh_token`.
    RefreshToken,
}

impl fmt::Display for AuthFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFlow::Password => "username-password",
            AuthFlow::ClientCredentials => "client-credentials",
            AuthFlow::JwtBearer => "JWT bearer",
            AuthFlow::RefreshToken => "refresh-token",
        })
    }
}

/// How the client logs in. Every secret inside is wrapped so that it never prints.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// The username-password flow.
    Password(Password),
    /// The client-credentials flow.
    ClientCredentials(ClientCredentials),
    /// The JWT bearer flow.
    JwtBearer(JwtBearer),
    /// The refresh-token flow.
    RefreshToken(RefreshToken),
}

impl Credentials {
    /// The flow these credentials use.
    pub fn flow(&self) -> AuthFlow {
        match self {
            Credentials::Password(_) => AuthFlow::Password,
            Credentials::ClientCredentials(_) => AuthFlow::ClientCredentials,
            Credentials::JwtBearer(_) => AuthFlow::JwtBearer,
            Credentials::RefreshToken(_) => AuthFlow::RefreshToken,
        }
    }

    fn form(&self, login_url: &Url) -> Result<Vec<(&'static str, String)>> {
        Ok(match self {
            Credentials::Password(flow) => flow.form(),
            Credentials::ClientCredentials(flow) => flow.form(),
            Credentials::JwtBearer(flow) => flow.form(login_url)?,
            Credentials::RefreshToken(flow) => flow.form(),
        })
    }

    /// Keeps a rotated refresh token for the next re-authentication, and returns it when
    /// it replaced the one in use.
    fn remember(&mut self, token: &Token) -> Option<SecretString> {
        let (Credentials::RefreshToken(flow), Some(rotated)) = (self, token.refresh_token()) else {
            return None;
        };
        if flow.refresh_token().expose_secret() == rotated.expose_secret() {
            return None;
        }
        flow.rotate(SecretString::clone(rotated));
        Some(SecretString::clone(rotated))
    }

    /// Takes `stored` as the refresh token to use, if these are refresh-token credentials
    /// holding another one. Returns whether it changed anything.
    fn adopt(&mut self, stored: SecretString) -> bool {
        match self {
            Credentials::RefreshToken(flow)
                if flow.refresh_token().expose_secret() != stored.expose_secret() =>
            {
                flow.rotate(stored);
                true
            }
            _ => false,
        }
    }
}

impl From<Password> for Credentials {
    fn from(flow: Password) -> Self {
        Credentials::Password(flow)
    }
}

impl From<ClientCredentials> for Credentials {
    fn from(flow: ClientCredentials) -> Self {
        Credentials::ClientCredentials(flow)
    }
}

impl From<JwtBearer> for Credentials {
    fn from(flow: JwtBearer) -> Self {
        Credentials::JwtBearer(flow)
    }
}

impl From<RefreshToken> for Credentials {
    fn from(flow: RefreshToken) -> Self {
        Credentials::RefreshToken(flow)
    }
}

/// How long a client whose refresh token was refused looks for the one another client is
/// saving: that client's rotation and its save are two steps (Salesforce's answer, then a
/// database write), and a refusal can fall between them.
const ROTATION_SAVE_WAIT: Duration = Duration::from_secs(3);
const ROTATION_SAVE_POLL: Duration = Duration::from_millis(100);

/// Adopts a refresh token from `store` that differs from the one just refused, waiting up
/// to [`ROTATION_SAVE_WAIT`] for another client's rotation to be saved; false when none
/// comes (the token was revoked, or nobody else holds the org).
async fn adopt_newer_stored(store: &dyn RefreshTokenStore, credentials: &mut Credentials) -> bool {
    let deadline = tokio::time::Instant::now() + ROTATION_SAVE_WAIT;
    loop {
        match store.load().await {
            Ok(Some(stored)) => {
                if credentials.adopt(stored) {
                    return true;
                }
            }
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!(%error, "cannot look for a newer refresh token");
                return false;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(ROTATION_SAVE_POLL).await;
    }
}

/// Requests a token from the login URL's token endpoint. A refresh token that Salesforce
/// rotated is kept in `credentials` and saved to `store`; a refresh token that Salesforce
/// refuses is replaced by the one in `store` once that is another (another client may be
/// saving the token it rotated: see [`adopt_newer_stored`]), and tried once more.
pub(crate) async fn request_token(
    http: &reqwest::Client,
    login_url: &Url,
    credentials: &mut Credentials,
    store: Option<&dyn RefreshTokenStore>,
) -> Result<Token> {
    let token = match request_once(http, login_url, credentials).await {
        Err(refused @ Error::Auth { .. }) if credentials.flow() == AuthFlow::RefreshToken => {
            let Some(store) = store else {
                return Err(refused);
            };
            if !adopt_newer_stored(store, credentials).await {
                return Err(refused);
            }
            tracing::info!("retrying with the refresh token another client stored");
            request_once(http, login_url, credentials).await?
        }
        other => other?,
    };
    if let (Some(rotated), Some(store)) = (credentials.remember(&token), store) {
        match store.save(&rotated).await {
            Ok(()) => tracing::debug!("saved the rotated refresh token"),
            // The token still works for this client; only the next start would lack it.
            Err(error) => tracing::error!(
                %error,
                "Salesforce rotated the refresh token and it could not be saved; \
                 after a restart the org must be authorized again"
            ),
        }
    }
    Ok(token)
}

/// One request to the token endpoint.
async fn request_once(
    http: &reqwest::Client,
    login_url: &Url,
    credentials: &Credentials,
) -> Result<Token> {
    let flow = credentials.flow();
    let endpoint = Endpoint {
        method: Method::POST,
        path: TOKEN_PATH.to_owned(),
    };
    let span = tracing::info_span!(
        "salesforce.auth",
        flow = %flow,
        path = TOKEN_PATH,
        status = tracing::field::Empty,
    );
    let token = async {
        let url = login_url
            .join(TOKEN_PATH)
            .map_err(|e| Error::Config(format!("token endpoint URL: {e}")))?;
        let form = credentials.form(login_url)?;
        let transport = |source: reqwest::Error| Error::Transport {
            endpoint: endpoint.clone(),
            source: source.without_url(),
        };
        let response = http.post(url).form(&form).send().await.map_err(transport)?;
        drop(form);
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(transport)?;
        token::parse(
            flow,
            endpoint.clone(),
            status,
            content_type.as_deref(),
            &body,
        )
    }
    .instrument(span)
    .await?;
    tracing::debug!(flow = %flow, instance_url = %token.instance_url(), "authenticated");
    Ok(token)
}
