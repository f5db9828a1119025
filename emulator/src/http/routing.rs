//! Which org a request is for, when one emulator serves several (see [`super::orgs`]):
//! the admin API by its `/__emulator/orgs/{n}` prefix (removed before the org's router
//! sees the path), a login by its client id, anything else by its access token.
//! `GET /__emulator/orgs` is answered here: every org's login.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::admin::admin_error;
use super::auth::bearer_token;
use super::error::RestError;
use super::oauth::basic_credentials;
use super::orgs::{OrgEntry, OrgSet, token_request_client_id};
use super::state::AppState;

/// The largest token request read to find its client id (a JWT assertion is a few KB).
const MAX_TOKEN_REQUEST_BYTES: usize = 64 * 1024;

/// Where a request goes.
pub enum Routed {
    /// To an org's router, with the request (its admin path rewritten, its body restored).
    Org {
        router: Router,
        state: AppState,
        request: Request<Body>,
    },
    /// Answered already (the org list, an unknown org number).
    Answered(Response),
}

/// The org `request` is for.
pub async fn find_org(orgs: &OrgSet, request: Request<Body>) -> Routed {
    let path = request.uri().path();
    if path == "/__emulator/orgs" {
        return Routed::Answered(list(orgs, request.method()));
    }
    if let Some(rest) = path.strip_prefix("/__emulator/orgs/") {
        let (number, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(org) = number.parse().ok().and_then(|n| orgs.numbered(n)) else {
            let message = format!("no org {number}: there are {}", orgs.len());
            return Routed::Answered(
                RestError::new(StatusCode::NOT_FOUND, "INVALID_ADMIN_REQUEST", message)
                    .into_response(),
            );
        };
        let rewritten = match (rest.is_empty(), request.uri().query()) {
            (true, None) => "/__emulator".to_owned(),
            (true, Some(q)) => format!("/__emulator?{q}"),
            (false, None) => format!("/__emulator/{rest}"),
            (false, Some(q)) => format!("/__emulator/{rest}?{q}"),
        };
        let mut request = request;
        if let Ok(uri) = rewritten.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
        return to(org, request);
    }
    if orgs.len() > 1 && path == "/services/oauth2/token" {
        return login(orgs, request).await;
    }
    let org = orgs.by_token(bearer_token(request.headers()));
    to(org, request)
}

fn to(org: &OrgEntry, request: Request<Body>) -> Routed {
    Routed::Org {
        router: org.router.clone(),
        state: org.state.clone(),
        request,
    }
}

/// A token request goes to the org whose app it names; its body is read to find the
/// client id, then given back to the request.
async fn login(orgs: &OrgSet, request: Request<Body>) -> Routed {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_TOKEN_REQUEST_BYTES).await else {
        // Too large or cut short: the first org answers what it can of an empty body.
        return to(orgs.first(), Request::from_parts(parts, Body::empty()));
    };
    let client_id = token_request_client_id(
        parts.uri.query(),
        &bytes,
        basic_credentials(&parts.headers).map(|(id, _)| id),
    );
    let org = orgs.by_client_id(client_id.as_deref());
    to(org, Request::from_parts(parts, Body::from(bytes)))
}

/// `GET /__emulator/orgs`: a JSON array of every org's login.
fn list(orgs: &OrgSet, method: &Method) -> Response {
    if method != Method::GET {
        return admin_error("GET /__emulator/orgs lists the orgs; nothing else is served here")
            .into_response();
    }
    Json(orgs.logins()).into_response()
}
