//! Getting an access token: the four OAuth 2.0 flows sfpg supports, one module each, and the
//! token endpoint they share (`POST {login}/services/oauth2/token`, reference §1).

mod client_credentials;
mod jwt_bearer;
mod password;
mod refresh_token;
mod token;

use std::fmt;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use secrecy::SecretString;
use tracing::Instrument;
use url::Url;

pub use client_credentials::ClientCredentials;
pub use jwt_bearer::JwtBearer;
pub use password::Password;
pub use refresh_token::RefreshToken;
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

    /// Keeps a rotated refresh token for the next re-authentication.
    fn remember(&mut self, token: &Token) {
        if let (Credentials::RefreshToken(flow), Some(rotated)) = (self, token.refresh_token()) {
            flow.rotate(SecretString::clone(rotated));
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

/// Requests a token from the login URL's token endpoint, and remembers a rotated refresh
/// token in `credentials`.
pub(crate) async fn request_token(
    http: &reqwest::Client,
    login_url: &Url,
    credentials: &mut Credentials,
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
    credentials.remember(&token);
    tracing::debug!(flow = %flow, instance_url = %token.instance_url(), "authenticated");
    Ok(token)
}
