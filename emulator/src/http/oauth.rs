//! `POST /services/oauth2/token`: the password, client-credentials, refresh-token and JWT
//! bearer grants, with Salesforce's response and error shapes (reference §1).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::error::OAuthError;
use super::state::{AppState, KnownApp, KnownUser};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A successful token response, in the key order Salesforce's samples show. Which optional
/// keys appear depends on the grant, as on Salesforce.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
    instance_url: String,
    id: String,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_at: Option<String>,
}

/// The claims of a JWT bearer assertion that Salesforce reads.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
}

pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut params: HashMap<String, String> = HashMap::new();
    // Salesforce reads the parameters from the query string as well as the form body.
    if let Some(query) = query {
        params.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
    }
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    if let Some((id, secret)) = basic_credentials(&headers) {
        params.entry("client_id".to_owned()).or_insert(id);
        params.entry("client_secret".to_owned()).or_insert(secret);
    }
    match grant(&state, &params) {
        Ok(response) => Json(response).into_response(),
        Err(e) => e.into_response(),
    }
}

fn grant(state: &AppState, params: &HashMap<String, String>) -> Result<TokenResponse, OAuthError> {
    let param = |name: &str| params.get(name).map(String::as_str);
    match param("grant_type") {
        Some("password") => {
            let app = confidential_client(state, param("client_id"), param("client_secret"))?;
            let user = state
                .user_by_password(param("username"), param("password"))
                .ok_or(OAuthError::AUTHENTICATION_FAILURE)?;
            // The username-password flow never issues a refresh token.
            Ok(respond(state, app, user, Signed::Yes, None, None))
        }
        Some("client_credentials") => {
            let app = confidential_client(state, param("client_id"), param("client_secret"))?;
            let user = app
                .client_credentials_user
                .as_deref()
                .and_then(|u| state.user(u))
                .ok_or(OAuthError::NO_CLIENT_CREDENTIALS_USER)?;
            Ok(respond(state, app, user, Signed::Yes, Some("api"), None))
        }
        Some("refresh_token") => {
            let app = state
                .app(param("client_id").unwrap_or_default())
                .ok_or(OAuthError::INVALID_CLIENT_ID)?;
            // The secret is optional for refresh, but must be right when sent.
            if let Some(secret) = param("client_secret")
                && secret != app.client_secret
            {
                return Err(OAuthError::INVALID_CLIENT);
            }
            let presented = param("refresh_token").unwrap_or_default();
            let grant = state
                .sessions()
                .refresh_grant(presented, &app.client_id)
                .ok_or(OAuthError::EXPIRED_REFRESH_TOKEN)?;
            let user = state
                .user(&grant.username)
                .ok_or(OAuthError::EXPIRED_REFRESH_TOKEN)?;
            let rotated = app.rotate_refresh_tokens.then(|| {
                let mut sessions = state.sessions();
                sessions.forget_refresh(presented);
                sessions.issue_refresh(user.user_id, &user.username, &app.client_id)
            });
            Ok(respond(
                state,
                app,
                user,
                Signed::Yes,
                Some("refresh_token api"),
                rotated,
            ))
        }
        Some(JWT_BEARER) => {
            let (app, user) = verify_assertion(state, param("assertion").unwrap_or_default())?;
            // The JWT bearer response has neither signature nor issued_at, nor a refresh token.
            Ok(respond(state, app, user, Signed::No, Some("api"), None))
        }
        Some(_) | None => Err(OAuthError::UNSUPPORTED_GRANT_TYPE),
    }
}

/// Checks a confidential client's id, then its secret, in Salesforce's order.
fn confidential_client<'a>(
    state: &'a AppState,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<&'a KnownApp, OAuthError> {
    let app = state
        .app(client_id.unwrap_or_default())
        .ok_or(OAuthError::INVALID_CLIENT_ID)?;
    if client_secret != Some(app.client_secret.as_str()) {
        return Err(OAuthError::INVALID_CLIENT);
    }
    Ok(app)
}

/// Verifies a JWT bearer assertion: the issuer names the app, the app's key checks the
/// RS256 signature, the audience is a login host, the expiry has not passed, and the
/// subject is a user.
fn verify_assertion<'a>(
    state: &'a AppState,
    assertion: &str,
) -> Result<(&'a KnownApp, &'a KnownUser), OAuthError> {
    // The issuer picks the key, so it is read before the signature can be checked.
    let mut peek = Validation::new(Algorithm::RS256);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.validate_aud = false;
    peek.required_spec_claims.clear();
    let unverified =
        jsonwebtoken::decode::<Claims>(assertion, &DecodingKey::from_secret(&[]), &peek)
            .map_err(|_| OAuthError::INVALID_ASSERTION)?;
    let app = state
        .app(&unverified.claims.iss)
        .ok_or(OAuthError::INVALID_CLIENT_ID)?;
    let key = app.jwt_key.as_ref().ok_or(OAuthError::INVALID_ASSERTION)?;

    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&state.jwt_audiences());
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 0;
    let verified =
        jsonwebtoken::decode::<Claims>(assertion, key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidAudience => OAuthError::AUDIENCE_INVALID,
                ErrorKind::ExpiredSignature => OAuthError::EXPIRED_ASSERTION,
                _ => OAuthError::INVALID_ASSERTION,
            }
        })?;
    let user = state
        .user(&verified.claims.sub)
        .ok_or(OAuthError::USER_NOT_APPROVED)?;
    Ok((app, user))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signed {
    Yes,
    No,
}

fn respond(
    state: &AppState,
    app: &KnownApp,
    user: &KnownUser,
    signed: Signed,
    scope: Option<&'static str>,
    refresh_token: Option<String>,
) -> TokenResponse {
    let access_token = state
        .sessions()
        .issue_access(user.user_id, &user.username, &app.client_id);
    let id = state.identity_url(&user.user_id);
    let (signature, issued_at) = match signed {
        Signed::Yes => {
            let issued_at = epoch_millis().to_string();
            (
                Some(signature(&app.client_secret, &id, &issued_at)),
                Some(issued_at),
            )
        }
        Signed::No => (None, None),
    };
    TokenResponse {
        access_token,
        refresh_token,
        signature,
        scope,
        instance_url: state.instance_url.clone(),
        id,
        token_type: "Bearer",
        issued_at,
    }
}

/// Base64 HMAC-SHA256 over the identity URL followed by `issued_at`, keyed with the
/// consumer secret: what Salesforce documents, so a client can check the response.
fn signature(client_secret: &str, id: &str, issued_at: &str) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// `Authorization: Basic base64(client_id:client_secret)`.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_id_and_issued_at() {
        // Computed with: printf '%s' 'https://h/id/00D/0051700000000000' |
        //   openssl dgst -sha256 -hmac secret -binary | base64
        assert_eq!(
            signature("secret", "https://h/id/00D/005", "1700000000000"),
            "7nlAj8XsGriIUHRMxWurxACdxQSg1zWP8M9tYiazpzw="
        );
    }

    #[test]
    fn reads_basic_client_credentials() {
        let mut headers = HeaderMap::new();
        let encoded = BASE64.encode("app:s3cret:with:colons");
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("app".to_owned(), "s3cret:with:colons".to_owned()))
        );
    }
}
