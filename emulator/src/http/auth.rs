//! The gate in front of every versioned REST resource: the API version must exist, the
//! bearer token must be a live session, and the daily allocation must have a request
//! left. A request that passes is counted and learns who its caller is.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::RestError;
use super::limits::Admission;
use super::state::AppState;
use super::versions::{self, ApiVersion, VersionCheck};
use crate::ids::Id;

/// Who is calling, and in which API version; handlers read it as an extension.
#[derive(Debug, Clone)]
pub struct Caller {
    pub version: ApiVersion,
    pub user_id: Id,
    /// The `client=` of the request's `Sforce-Call-Options` header.
    pub client: Option<String>,
}

impl Caller {
    /// `changeOrigin` for changes this request makes through `api` (`rest`, `bulkapi`):
    /// `com/salesforce/api/rest/62.0;client=sfpg`, without `;client=` when none was given.
    pub fn change_origin(&self, api: &str) -> String {
        let base = format!("com/salesforce/api/{api}/{}", self.version.number());
        match &self.client {
            Some(client) => format!("{base};client={client}"),
            None => base,
        }
    }
}

/// The `client` option of `Sforce-Call-Options: client=NAME[, defaultNamespace=…]`.
pub fn call_options_client(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("sforce-call-options")?.to_str().ok()?;
    value.split(',').find_map(|option| {
        let (key, value) = option.split_once('=')?;
        (key.trim().eq_ignore_ascii_case("client") && !value.trim().is_empty())
            .then(|| value.trim().to_owned())
    })
}

/// Marks a response to a request that used one of the daily allocation.
#[derive(Debug, Clone, Copy)]
pub struct Counted;

pub async fn require_session(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // The path is `/services/data/vXX.X/...`; its fourth segment is the version.
    let segment = request.uri().path().split('/').nth(3).unwrap_or_default();
    let version = match versions::check(segment) {
        VersionCheck::Served(v) => v,
        VersionCheck::Retired => return RestError::gone().into_response(),
        VersionCheck::Unknown => return RestError::not_found().into_response(),
    };
    let Some(token) = bearer_token(request.headers()) else {
        return RestError::invalid_session().into_response();
    };
    let Some(session) = state.sessions().session(token) else {
        return RestError::invalid_session().into_response();
    };
    let admission = state.usage().admit();
    if let Admission::Exceeded { .. } = admission {
        return RestError::request_limit_exceeded().into_response();
    }
    let client = call_options_client(request.headers());
    request.extensions_mut().insert(Caller {
        version,
        user_id: session.user_id,
        client,
    });
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Counted);
    response
}

/// `Authorization: Bearer <token>`; Salesforce also takes the older `OAuth <token>`.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth");
    (known && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn reads_bearer_and_oauth_schemes() {
        assert_eq!(bearer_token(&headers("Bearer 00D!abc")), Some("00D!abc"));
        assert_eq!(bearer_token(&headers("OAuth 00D!abc")), Some("00D!abc"));
        assert_eq!(bearer_token(&headers("bearer 00D!abc")), Some("00D!abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
