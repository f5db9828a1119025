//! The admin API under `/__emulator/`: not Salesforce, never counted, never faulted. It
//! injects latency, failures and dropped connections, revokes sessions, reads the request
//! log, resets or spends the API allocation, expires query locators, undeletes records,
//! changes records as another user, and adds object definitions. [`RunningEmulator`]
//! offers the same operations to Rust tests.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value as JsonValue, json};

use super::error::{RestError, parse_json};
use super::faults::{DropRule, FailureRule, FaultsView, Latency};
use super::request_log::LoggedRequest;
use super::server::RunningEmulator;
use super::state::{AppState, Shared};
use crate::ids::Id;
use crate::model::ObjectDef;
use crate::org::Org;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(summary))
        .route("/faults", get(faults).delete(clear_faults))
        .route("/faults/latency", put(set_latency).delete(clear_latency))
        .route("/faults/failures", post(add_failure))
        .route("/faults/drops", post(add_drop))
        .route("/sessions/revoke", post(revoke_sessions))
        .route("/refresh-tokens", post(refresh_token))
        .route("/requests", get(requests).delete(clear_requests))
        .route("/limits", get(limits).put(set_limits))
        .route("/limits/reset", post(reset_limits))
        .route("/query-locators/expire", post(expire_locators))
        .route("/records/{id}/undelete", post(undelete))
        .route("/sobjects/{object}", post(create_as))
        .route(
            "/sobjects/{object}/{id}",
            axum::routing::patch(update_as).delete(delete_as),
        )
        .route("/objects", post(define_object))
}

// ---- operations shared by the HTTP admin API and `RunningEmulator` ----

impl Shared {
    /// The acting user for an admin change: a username or user Id, or by default the
    /// first configured user.
    fn acting_user(&self, org: &Org, as_user: Option<&str>) -> Result<Id, RestError> {
        let Some(who) = as_user else {
            return self
                .users()
                .first()
                .map(|u| u.user_id)
                .ok_or_else(|| admin_error("no users are configured"));
        };
        if let Some(id) = org.user_id_by_username(who) {
            return Ok(id);
        }
        Id::parse(who)
            .ok()
            .filter(|id| org.user_ids().contains(id))
            .ok_or_else(|| admin_error(&format!("no user {who}")))
    }

    fn issue_refresh_token(&self, username: &str, client_id: &str) -> Option<String> {
        let user = self.user(username)?;
        self.app(client_id)?;
        Some(
            self.sessions()
                .issue_refresh(user.user_id, &user.username, client_id),
        )
    }

    fn create_as(
        &self,
        object: &str,
        fields: &Map<String, JsonValue>,
        as_user: Option<&str>,
    ) -> Result<String, RestError> {
        let mut org = self.org_mut();
        let user = self.acting_user(&org, as_user)?;
        Ok(org.create(object, fields, &user)?.to_string())
    }

    fn update_as(
        &self,
        object: &str,
        id: &str,
        fields: &Map<String, JsonValue>,
        as_user: Option<&str>,
    ) -> Result<(), RestError> {
        let mut org = self.org_mut();
        let user = self.acting_user(&org, as_user)?;
        Ok(org.update(object, id, fields, &user)?)
    }

    fn delete_as(&self, object: &str, id: &str, as_user: Option<&str>) -> Result<(), RestError> {
        let mut org = self.org_mut();
        let user = self.acting_user(&org, as_user)?;
        Ok(org.delete(object, id, &user)?)
    }

    fn undelete_as(&self, id: &str, as_user: Option<&str>) -> Result<(), RestError> {
        let mut org = self.org_mut();
        let user = self.acting_user(&org, as_user)?;
        Ok(org.undelete(id, &user)?)
    }

    fn define_object_json(&self, definition: &str) -> Result<(), RestError> {
        let def = ObjectDef::from_json(definition).map_err(|e| admin_error(&e.to_string()))?;
        self.org_mut()
            .define_object(def)
            .map_err(|e| admin_error(&e.to_string()))
    }
}

pub(super) fn admin_error(message: &str) -> RestError {
    RestError::bad_request("INVALID_ADMIN_REQUEST", message)
}

// ---- HTTP handlers ----

async fn summary(State(state): State<AppState>) -> Json<JsonValue> {
    let (used, max) = state.usage().usage();
    let apps: Vec<JsonValue> = state
        .apps()
        .iter()
        .map(|a| json!({"clientId": a.client_id, "clientSecret": a.client_secret}))
        .collect();
    let users: Vec<JsonValue> = state
        .users()
        .iter()
        .map(|u| json!({"username": u.username, "password": u.password, "userId": u.user_id.as_str()}))
        .collect();
    Json(json!({
        "instanceUrl": state.instance_url,
        "loginUrl": state.login_url,
        "tokenUrl": format!("{}/services/oauth2/token", state.login_url),
        "orgId": state.org_id,
        "apps": apps,
        "users": users,
        "apiUsage": {"used": used, "max": max},
        "records": state.org().total_records(),
    }))
}

async fn faults(State(state): State<AppState>) -> Json<FaultsView> {
    Json(state.faults().view())
}

async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}

async fn set_latency(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let latency: Latency = parse_json(&body)?;
    state.faults().set_latency(Some(latency));
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_latency(State(state): State<AppState>) -> StatusCode {
    state.faults().set_latency(None);
    StatusCode::NO_CONTENT
}

async fn add_failure(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let rule: FailureRule = parse_json(&body)?;
    if StatusCode::from_u16(rule.status).is_err() {
        return Err(admin_error(&format!(
            "{} is not an HTTP status",
            rule.status
        )));
    }
    state.faults().add_failure(rule);
    Ok(StatusCode::CREATED)
}

async fn add_drop(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let rule: DropRule = parse_json(&body)?;
    state.faults().add_drop(rule);
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RevokeBody {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    refresh_tokens: bool,
}

async fn revoke_sessions(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<JsonValue>, RestError> {
    let body: RevokeBody = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeBody::default()
    } else {
        parse_json(&body)?
    };
    let revoked = state
        .sessions()
        .revoke(body.username.as_deref(), body.refresh_tokens);
    Ok(Json(json!({"revoked": revoked})))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshTokenBody {
    username: String,
    client_id: String,
}

async fn refresh_token(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, RestError> {
    let body: RefreshTokenBody = parse_json(&body)?;
    let token = state
        .issue_refresh_token(&body.username, &body.client_id)
        .ok_or_else(|| admin_error("unknown username or client id"))?;
    Ok((StatusCode::CREATED, Json(json!({"refresh_token": token}))).into_response())
}

#[derive(Debug, Deserialize)]
struct AfterParam {
    #[serde(default)]
    after: u64,
}

async fn requests(
    State(state): State<AppState>,
    Query(params): Query<AfterParam>,
) -> Json<Vec<LoggedRequest>> {
    Json(state.log().after(params.after))
}

async fn clear_requests(State(state): State<AppState>) -> StatusCode {
    state.log().clear();
    StatusCode::NO_CONTENT
}

async fn limits(State(state): State<AppState>) -> Json<JsonValue> {
    let (used, max) = state.usage().usage();
    Json(json!({"used": used, "max": max}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimitsBody {
    /// A new daily allocation.
    #[serde(default)]
    max: Option<u64>,
    /// Requests to count as used now, as if another client had made them.
    #[serde(default)]
    consume: Option<u64>,
}

async fn set_limits(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<JsonValue>, RestError> {
    let body: LimitsBody = parse_json(&body)?;
    let mut usage = state.usage();
    if let Some(max) = body.max {
        usage.set_max(max);
    }
    if let Some(n) = body.consume {
        usage.consume(n);
    }
    let (used, max) = usage.usage();
    Ok(Json(json!({"used": used, "max": max})))
}

async fn reset_limits(State(state): State<AppState>) -> StatusCode {
    state.usage().reset();
    StatusCode::NO_CONTENT
}

async fn expire_locators(State(state): State<AppState>) -> Json<JsonValue> {
    let expired = state.locators().expire_all();
    Json(json!({"expired": expired}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AsUser {
    #[serde(default)]
    as_user: Option<String>,
}

async fn undelete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(who): Query<AsUser>,
) -> Result<StatusCode, RestError> {
    state.undelete_as(&id, who.as_user.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeBody {
    #[serde(default)]
    as_user: Option<String>,
    fields: Map<String, JsonValue>,
}

async fn create_as(
    State(state): State<AppState>,
    Path(object): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, RestError> {
    let body: ChangeBody = parse_json(&body)?;
    let id = state.create_as(&object, &body.fields, body.as_user.as_deref())?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

async fn update_as(
    State(state): State<AppState>,
    Path((object, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let body: ChangeBody = parse_json(&body)?;
    state.update_as(&object, &id, &body.fields, body.as_user.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_as(
    State(state): State<AppState>,
    Path((object, id)): Path<(String, String)>,
    Query(who): Query<AsUser>,
) -> Result<StatusCode, RestError> {
    state.delete_as(&object, &id, who.as_user.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn define_object(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<StatusCode, RestError> {
    let text =
        std::str::from_utf8(&body).map_err(|_| admin_error("the definition is not UTF-8"))?;
    state.define_object_json(text)?;
    Ok(StatusCode::CREATED)
}

// ---- the same operations for Rust tests ----

impl RunningEmulator {
    /// Adds `fixed` plus up to `jitter` to every request (`None` for every request:
    /// see [`Latency`] to restrict it to some).
    pub fn set_latency(&self, latency: Option<Latency>) {
        self.state.faults().set_latency(latency);
    }

    /// Answers the next matching requests with an error (see [`FailureRule`]).
    pub fn fail_next(&self, rule: FailureRule) {
        self.state.faults().add_failure(rule);
    }

    /// Closes the connection of the next matching requests without an answer.
    pub fn drop_next(&self, rule: DropRule) {
        self.state.faults().add_drop(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.state.faults().clear();
    }

    /// The fault rules in force.
    pub fn faults(&self) -> FaultsView {
        self.state.faults().view()
    }

    /// Ends the sessions of one user, or everyone's; with `refresh_tokens`, their
    /// refresh tokens too. Returns how many tokens were revoked.
    pub fn revoke_sessions(&self, username: Option<&str>, refresh_tokens: bool) -> usize {
        self.state.sessions().revoke(username, refresh_tokens)
    }

    /// A refresh token for a configured user and app, as a finished web-server flow
    /// would have issued (none of the emulated grants issues one).
    pub fn issue_refresh_token(&self, username: &str, client_id: &str) -> Option<String> {
        self.state.issue_refresh_token(username, client_id)
    }

    /// Changes the lifetime of access tokens issued from now on.
    pub fn set_session_lifetime(&self, lifetime: Duration) {
        self.state.sessions().set_lifetime(lifetime);
    }

    /// The request log entries after sequence number `after` (0 for all), oldest first.
    pub fn requests(&self, after: u64) -> Vec<LoggedRequest> {
        self.state.log().after(after)
    }

    /// Org `number`'s request log after sequence number `after` (see [`Self::requests`]);
    /// `None` when there is no such org (see `EmulatorConfig::orgs`).
    pub fn org_requests(&self, number: usize, after: u64) -> Option<Vec<LoggedRequest>> {
        self.orgs()
            .numbered(number)
            .map(|org| org.state.log().after(after))
    }

    pub fn clear_requests(&self) {
        self.state.log().clear();
    }

    /// (used, max) of the daily API allocation.
    pub fn api_usage(&self) -> (u64, u64) {
        self.state.usage().usage()
    }

    /// Forgets every counted request.
    pub fn reset_limits(&self) {
        self.state.usage().reset();
    }

    /// Changes the daily API allocation.
    pub fn set_daily_api_limit(&self, max: u64) {
        self.state.usage().set_max(max);
    }

    /// Counts `n` requests as used now, as if another client had made them.
    pub fn consume_api_requests(&self, n: u64) {
        self.state.usage().consume(n);
    }

    /// Ends every open query locator; their `nextRecordsUrl`s then answer
    /// `INVALID_QUERY_LOCATOR`. Returns how many were open.
    pub fn expire_query_locators(&self) -> usize {
        self.state.locators().expire_all()
    }

    /// Changes how long idle query locators live.
    pub fn set_query_locator_lifetime(&self, lifetime: Duration) {
        self.state.locators().set_lifetime(lifetime);
    }

    /// Restores a record from the recycle bin, as `as_user` (a username or user Id;
    /// `None` for the first configured user).
    pub fn undelete(&self, id: &str, as_user: Option<&str>) -> Result<(), RestError> {
        self.state.undelete_as(id, as_user)
    }

    /// Creates a record as another user, without using the counted API.
    pub fn create_as(
        &self,
        object: &str,
        fields: &Map<String, JsonValue>,
        as_user: Option<&str>,
    ) -> Result<String, RestError> {
        self.state.create_as(object, fields, as_user)
    }

    /// Updates a record as another user, without using the counted API.
    pub fn update_as(
        &self,
        object: &str,
        id: &str,
        fields: &Map<String, JsonValue>,
        as_user: Option<&str>,
    ) -> Result<(), RestError> {
        self.state.update_as(object, id, fields, as_user)
    }

    /// Deletes a record as another user, without using the counted API.
    pub fn delete_as(
        &self,
        object: &str,
        id: &str,
        as_user: Option<&str>,
    ) -> Result<(), RestError> {
        self.state.delete_as(object, id, as_user)
    }

    /// Adds an object from a definition in the bundled files' format.
    pub fn define_object(&self, definition_json: &str) -> Result<(), RestError> {
        self.state.define_object_json(definition_json)
    }

    /// Reads the org directly (no API call, nothing counted). The lock is held while `f`
    /// runs, so keep it short.
    pub fn with_org<R>(&self, f: impl FnOnce(&Org) -> R) -> R {
        f(&self.state.org())
    }

    /// Changes the org directly (no API call, nothing counted).
    pub fn with_org_mut<R>(&self, f: impl FnOnce(&mut Org) -> R) -> R {
        f(&mut self.state.org_mut())
    }
}
