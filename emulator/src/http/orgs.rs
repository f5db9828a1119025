//! Several orgs served by one emulator (`sfpg emulator --orgs N`): each has its own data,
//! limits, request log, faults, sessions, Bulk jobs, event bus, CometD clients and Pub/Sub
//! streams (one [`Shared`](super::state::Shared) each, the same as a single org has), and
//! its own login.
//!
//! All orgs share one instance URL, as many orgs share one Salesforce instance
//! (`na123.salesforce.com`), so Salesforce's wire formats need no change. A request finds
//! its org the way Salesforce's own pods tell orgs apart:
//! - an API, CometD or Pub/Sub call by its access token, which starts with the
//!   15-character org Id (each org has its own, the `n`-th `00D…` Id);
//! - a login (`/services/oauth2/token`) by its connected app's client id (every grant
//!   names one: the `client_id` parameter, HTTP Basic, or a JWT assertion's `iss`), each
//!   org having its own app;
//! - the admin API by its path: `/__emulator/orgs/{n}/…` is org `n`'s (1-based), and
//!   today's `/__emulator/…` stays the first org's.
//!
//! A request that names no org (no token, an unknown one) goes to the first org, which
//! answers it as a single org would (`401 INVALID_SESSION_ID`, `invalid_client_id`), so
//! one org behaves exactly as before.

use std::collections::HashMap;

use axum::Router;
use serde::Serialize;

use super::config::{ConnectedApp, UserLogin};
use super::state::AppState;

/// One org: its state and the router bound to it.
pub struct OrgEntry {
    pub state: AppState,
    pub router: Router,
    /// The login printed at start and listed by `GET /__emulator/orgs`.
    pub login: OrgLogin,
}

/// How to log in to one org, as `GET /__emulator/orgs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgLogin {
    /// 1-based; the admin API of org `n` is under `/__emulator/orgs/{n}/`.
    pub number: usize,
    pub org_id: String,
    pub instance_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
}

/// The orgs of one emulator, with the indexes a request is routed by.
pub struct OrgSet {
    entries: Vec<OrgEntry>,
    by_org_id15: HashMap<String, usize>,
    by_client_id: HashMap<String, usize>,
}

impl OrgSet {
    /// The set of `entries` (at least one: the first is the default org).
    pub fn new(entries: Vec<OrgEntry>) -> OrgSet {
        let mut by_org_id15 = HashMap::with_capacity(entries.len());
        let mut by_client_id = HashMap::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            by_org_id15.insert(entry.state.org_id.chars().take(15).collect(), i);
            for app in entry.state.apps() {
                by_client_id.entry(app.client_id.clone()).or_insert(i);
            }
        }
        OrgSet {
            entries,
            by_org_id15,
            by_client_id,
        }
    }

    /// How many orgs there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first org: the default for requests that name none.
    pub fn first(&self) -> &OrgEntry {
        &self.entries[0]
    }

    /// Org `number` (1-based).
    pub fn numbered(&self, number: usize) -> Option<&OrgEntry> {
        number.checked_sub(1).and_then(|i| self.entries.get(i))
    }

    /// Every org, in order.
    pub fn iter(&self) -> impl Iterator<Item = &OrgEntry> {
        self.entries.iter()
    }

    /// The org an access token belongs to (its first 15 characters are the org Id), or
    /// the first org.
    pub fn by_token(&self, token: Option<&str>) -> &OrgEntry {
        token
            .and_then(|t| t.split_once('!'))
            .and_then(|(org, _)| self.by_org_id15.get(org))
            .map_or(self.first(), |&i| &self.entries[i])
    }

    /// The org whose connected app this is, or the first org.
    pub fn by_client_id(&self, client_id: Option<&str>) -> &OrgEntry {
        client_id
            .and_then(|id| self.by_client_id.get(id))
            .map_or(self.first(), |&i| &self.entries[i])
    }

    /// Every org's login.
    pub fn logins(&self) -> Vec<OrgLogin> {
        self.entries.iter().map(|e| e.login.clone()).collect()
    }
}

/// Org `number`'s connected apps: the configured ones for the first org; for the others
/// the same apps with the org in their client id (`….org2`) and secret (`…-org2`), and
/// their client-credentials user renamed as [`users_of`] renames it.
pub fn apps_of(apps: &[ConnectedApp], number: usize) -> Vec<ConnectedApp> {
    if number <= 1 {
        return apps.to_vec();
    }
    apps.iter()
        .map(|app| ConnectedApp {
            client_id: format!("{}.org{number}", app.client_id),
            client_secret: format!("{}-org{number}", app.client_secret),
            client_credentials_user: app
                .client_credentials_user
                .as_deref()
                .map(|u| username_of(u, number)),
            ..app.clone()
        })
        .collect()
}

/// Org `number`'s users: the configured ones for the first org; for the others the same
/// users with the org in their username's domain (`admin@org2.sfpg.example`: usernames
/// are unique across Salesforce) and in their password (`…-org2`).
pub fn users_of(users: &[UserLogin], number: usize) -> Vec<UserLogin> {
    if number <= 1 {
        return users.to_vec();
    }
    users
        .iter()
        .map(|user| UserLogin {
            username: username_of(&user.username, number),
            password: format!("{}-org{number}", user.password),
            security_token: user.security_token.clone(),
        })
        .collect()
}

fn username_of(username: &str, number: usize) -> String {
    match username.split_once('@') {
        Some((name, domain)) => format!("{name}@org{number}.{domain}"),
        None => format!("{username}.org{number}"),
    }
}

/// The client id a token request names, wherever the grant puts it: the `client_id`
/// parameter (query string or form body), HTTP Basic's user, or the `iss` of a JWT
/// bearer assertion (read, not verified: the org verifies it).
pub fn token_request_client_id(
    query: Option<&str>,
    body: &[u8],
    basic_user: Option<String>,
) -> Option<String> {
    let mut client_id = None;
    let mut assertion = None;
    let params = query
        .map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .into_iter()
        .flatten()
        .chain(url::form_urlencoded::parse(body));
    for (key, value) in params {
        match key.as_ref() {
            "client_id" => client_id = Some(value.into_owned()),
            "assertion" => assertion = Some(value.into_owned()),
            _ => {}
        }
    }
    client_id
        .or(basic_user)
        .or_else(|| assertion.as_deref().and_then(assertion_issuer))
}

/// The `iss` claim of a JWT (its payload, base64url-encoded, between the two dots).
fn assertion_issuer(assertion: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = assertion.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims["iss"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_orgs_get_their_own_logins() {
        let users = vec![UserLogin {
            username: "admin@sfpg.example".to_owned(),
            password: "pw".to_owned(),
            security_token: None,
        }];
        assert_eq!(users_of(&users, 1), users);
        let second = users_of(&users, 2);
        assert_eq!(second[0].username, "admin@org2.sfpg.example");
        assert_eq!(second[0].password, "pw-org2");
        let apps = vec![ConnectedApp {
            client_id: "key".to_owned(),
            client_secret: "secret".to_owned(),
            jwt_public_key_pem: None,
            client_credentials_user: Some("admin@sfpg.example".to_owned()),
            rotate_refresh_tokens: false,
        }];
        let third = apps_of(&apps, 3);
        assert_eq!(third[0].client_id, "key.org3");
        assert_eq!(third[0].client_secret, "secret-org3");
        assert_eq!(
            third[0].client_credentials_user.as_deref(),
            Some("admin@org3.sfpg.example")
        );
    }

    #[test]
    fn finds_the_client_id_of_every_grant() {
        assert_eq!(
            token_request_client_id(None, b"grant_type=password&client_id=a.org2", None),
            Some("a.org2".to_owned())
        );
        assert_eq!(
            token_request_client_id(Some("client_id=q"), b"grant_type=password", None),
            Some("q".to_owned())
        );
        assert_eq!(
            token_request_client_id(None, b"grant_type=client_credentials", Some("b".into())),
            Some("b".to_owned())
        );
        // {"iss":"c.org5","sub":"x"}
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"iss":"c.org5","sub":"x"}"#,
        );
        let body = format!("grant_type=jwt&assertion=e30.{payload}.sig");
        assert_eq!(
            token_request_client_id(None, body.as_bytes(), None),
            Some("c.org5".to_owned())
        );
        assert_eq!(token_request_client_id(None, b"", None), None);
    }
}
