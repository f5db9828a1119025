//! The token endpoint's answers: the token response of reference §1.3 and the
//! `{error, error_description}` refusals of §1.4.
//!
//! There is no `expires_in`: a token lives as long as the org's session timeout says, and
//! the first sign of its end is a 401 `INVALID_SESSION_ID`.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::AuthFlow;
use crate::error::{Endpoint, Error, Result};

/// An access token and what came with it.
#[derive(Debug, Clone)]
pub struct Token {
    access_token: SecretString,
    instance_url: Url,
    identity_url: Option<String>,
    token_type: Option<String>,
    issued_at: Option<DateTime<Utc>>,
    scope: Option<String>,
    refresh_token: Option<SecretString>,
}

impl Token {
    /// The bearer token. It stays wrapped: use `secrecy::ExposeSecret` to read it.
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// The org's instance (`https://acme.my.salesforce.com`); every API call goes here.
    pub fn instance_url(&self) -> &Url {
        &self.instance_url
    }

    /// The identity URL, `https://login.salesforce.com/id/<orgId>/<userId>`.
    pub fn identity_url(&self) -> Option<&str> {
        self.identity_url.as_deref()
    }

    /// The org's Id, from the identity URL.
    pub fn org_id(&self) -> Option<&str> {
        self.identity_parts().map(|(org, _)| org)
    }

    /// The authenticated user's Id, from the identity URL.
    pub fn user_id(&self) -> Option<&str> {
        self.identity_parts().map(|(_, user)| user)
    }

    /// `Bearer`, as Salesforce reports it.
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// When Salesforce issued the token.
    pub fn issued_at(&self) -> Option<DateTime<Utc>> {
        self.issued_at
    }

    /// The scopes granted, space-separated.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// A refresh token, when the flow issues one (the refresh-token flow with rotation
    /// enabled returns a new one each time).
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh_token.as_ref()
    }

    fn identity_parts(&self) -> Option<(&str, &str)> {
        let url = self.identity_url.as_deref()?;
        let path = url.split_once("/id/")?.1;
        let (org, user) = path.trim_end_matches('/').split_once('/')?;
        (!org.is_empty() && !user.is_empty() && !user.contains('/')).then_some((org, user))
    }
}

/// The token response. Deliberately not `Debug`: it holds the token in the clear.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
    id: Option<String>,
    token_type: Option<String>,
    issued_at: Option<String>,
    scope: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Reads the token endpoint's answer.
pub(crate) fn parse(
    flow: AuthFlow,
    endpoint: Endpoint,
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Token> {
    if !status.is_success() {
        if let Ok(refusal) = serde_json::from_slice::<TokenError>(body) {
            return Err(Error::Auth {
                flow,
                status,
                error: refusal.error,
                description: refusal.error_description,
            });
        }
        return Err(Error::from_response(endpoint, status, content_type, body));
    }
    // serde's messages can quote the offending value, which here may be a token: report
    // only where the answer broke.
    let response: TokenResponse = serde_json::from_slice(body).map_err(|e| Error::Protocol {
        endpoint: endpoint.clone(),
        detail: format!(
            "the token response is not the documented JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    })?;
    let instance_url = Url::parse(&response.instance_url)
        .ok()
        .filter(|url| matches!(url.scheme(), "https" | "http") && url.host_str().is_some())
        .ok_or_else(|| Error::Protocol {
            endpoint,
            detail: format!(
                "the token response's instance_url {:?} is not a URL",
                response.instance_url
            ),
        })?;
    Ok(Token {
        access_token: response.access_token.into(),
        instance_url,
        identity_url: response.id,
        token_type: response.token_type,
        issued_at: response
            .issued_at
            .and_then(|ms| ms.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis),
        scope: response.scope,
        refresh_token: response.refresh_token.map(SecretString::from),
    })
}

#[cfg(test)]
mod tests {
    use reqwest::Method;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::error::ErrorClass;

    fn endpoint() -> Endpoint {
        Endpoint {
            method: Method::POST,
            path: "/services/oauth2/token".into(),
        }
    }

    fn parse_body(flow: AuthFlow, status: u16, body: &str) -> Result<Token> {
        parse(
            flow,
            endpoint(),
            StatusCode::from_u16(status).unwrap(),
            Some("application/json"),
            body.as_bytes(),
        )
    }

    #[test]
    fn username_password_response() {
        let token = parse_body(
            AuthFlow::Password,
            200,
            r#"{"access_token":"00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog.39AsX.LVpxezPwuX5VAIrrbbHMuol7GQxnMeYMN7cj8EoWr78nt1u44zU31IbYNNJguseu",
                "instance_url":"https://acme.my.salesforce.com",
                "id":"https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
                "token_type":"Bearer","issued_at":"1278448832702",
                "signature":"0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ="}"#,
        )
        .unwrap();
        assert!(
            token
                .access_token()
                .expose_secret()
                .starts_with("00Dxx0000001gPL!")
        );
        assert_eq!(
            token.instance_url().as_str(),
            "https://acme.my.salesforce.com/"
        );
        assert_eq!(token.org_id(), Some("00Dxx0000001gPLEAY"));
        assert_eq!(token.user_id(), Some("005xx000001SwiUAAS"));
        assert_eq!(token.token_type(), Some("Bearer"));
        assert_eq!(
            token.issued_at().unwrap().timestamp_millis(),
            1_278_448_832_702
        );
        assert!(token.refresh_token().is_none());
        let debug = format!("{token:?}");
        assert!(!debug.contains("AR8AQJXg5oj8"), "{debug}");
    }

    #[test]
    fn client_credentials_and_jwt_responses_with_scope() {
        let token = parse_body(
            AuthFlow::ClientCredentials,
            200,
            r#"{"access_token":"tok","signature":"sig","scope":"api","instance_url":"https://acme.my.salesforce.com",
                "id":"https://acme.my.salesforce.com/id/00D000000000001AAA/005000000000001AAA","token_type":"Bearer",
                "issued_at":"1690000000000","api_instance_url":"https://api.salesforce.com"}"#,
        )
        .unwrap();
        assert_eq!(token.scope(), Some("api"));
        assert_eq!(token.org_id(), Some("00D000000000001AAA"));
        // JWT bearer: no signature, no issued_at.
        let token = parse_body(
            AuthFlow::JwtBearer,
            200,
            r#"{"access_token":"tok","scope":"web api","instance_url":"https://acme.my.salesforce.com","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(token.issued_at(), None);
        assert_eq!(token.user_id(), Some("005"));
    }

    #[test]
    fn refresh_response_with_a_rotated_refresh_token() {
        let token = parse_body(
            AuthFlow::RefreshToken,
            200,
            r#"{"access_token":"tok","refresh_token":"rt-rotated","instance_url":"https://acme.my.salesforce.com","id":"x","token_type":"Bearer","issued_at":"1690000000000","signature":"s"}"#,
        )
        .unwrap();
        assert_eq!(token.refresh_token().unwrap().expose_secret(), "rt-rotated");
        assert_eq!(token.org_id(), None);
    }

    #[test]
    fn token_errors_name_the_flow_and_are_not_retryable() {
        for (flow, error, description) in [
            (
                AuthFlow::Password,
                "invalid_grant",
                "authentication failure",
            ),
            (
                AuthFlow::JwtBearer,
                "invalid_grant",
                "user hasn't approved this consumer",
            ),
            (AuthFlow::JwtBearer, "invalid_grant", "audience is invalid"),
            (
                AuthFlow::RefreshToken,
                "invalid_grant",
                "expired access/refresh token",
            ),
            (
                AuthFlow::ClientCredentials,
                "invalid_client_id",
                "client identifier invalid",
            ),
            (
                AuthFlow::Password,
                "unsupported_grant_type",
                "grant type not supported",
            ),
            (AuthFlow::Password, "inactive_user", "user is inactive"),
            (
                AuthFlow::Password,
                "rate_limit_exceeded",
                "rate limit exceeded",
            ),
        ] {
            let body = format!(r#"{{"error":"{error}","error_description":"{description}"}}"#);
            let err = parse_body(flow, 400, &body).unwrap_err();
            assert_eq!(err.class(), ErrorClass::Auth);
            assert!(!err.is_retryable());
            assert_eq!(
                err.to_string(),
                format!("{flow} authentication failed (400 Bad Request): {error}: {description}")
            );
        }
    }

    #[test]
    fn html_from_the_token_endpoint() {
        let err = parse(
            AuthFlow::Password,
            endpoint(),
            StatusCode::SERVICE_UNAVAILABLE,
            Some("text/html"),
            b"<html><head><title>Maintenance</title></head></html>",
        )
        .unwrap_err();
        assert!(matches!(err, Error::UnexpectedBody { .. }));
        assert!(err.is_retryable());
    }

    #[test]
    fn malformed_success_does_not_echo_the_body() {
        let err = parse_body(
            AuthFlow::Password,
            200,
            r#"{"access_token":12345678901,"instance_url":"https://x"}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("12345678901"), "{err}");
        let err = parse_body(
            AuthFlow::Password,
            200,
            r#"{"access_token":"t","instance_url":"not a url"}"#,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }));
    }
}
