//! The emulator's URL map: which handler answers which path and method, which paths need
//! a session, and the layers every request goes through.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};

use super::error::RestError;
use super::service::MAX_BODY_BYTES;
use super::state::AppState;
use super::{
    admin, admin_cdc, admin_pubsub, auth, bulk, collections, cometd, composite, limits, oauth,
    query, replication, sobjects, tooling, versions,
};

/// Every route: the open ones (versions, OAuth, CometD), the REST API behind a session,
/// and the admin API under `/__emulator`.
pub(super) fn routes(state: AppState) -> Router {
    let api = sobject_routes()
        .merge(query_routes())
        .merge(composite_routes())
        .merge(bulk::routes())
        .route_layer(from_fn_with_state(state.clone(), auth::require_session));

    Router::new()
        .route("/services/data", get(versions::versions))
        .route("/services/oauth2/token", post(oauth::token))
        .route("/cometd/{version}", post(cometd::cometd))
        .merge(api)
        .nest(
            "/__emulator",
            admin::routes()
                .merge(admin_cdc::routes())
                .merge(admin_pubsub::routes())
                .merge(bulk::admin_routes()),
        )
        .fallback(|| async { RestError::not_found() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Versions, limits, describes, single records and the replication calls.
fn sobject_routes() -> Router<AppState> {
    Router::new()
        .route("/services/data/{version}", get(versions::resources))
        .route("/services/data/{version}/limits", get(limits::limits))
        .route(
            "/services/data/{version}/sobjects",
            get(sobjects::describe_global),
        )
        .route(
            "/services/data/{version}/sobjects/{object}",
            get(sobjects::basic_info).post(sobjects::create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe",
            get(sobjects::describe),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/updated",
            get(replication::updated),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted",
            get(replication::deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(sobjects::retrieve)
                .patch(sobjects::update)
                .delete(sobjects::delete)
                .post(sobjects::create_through_upsert),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            get(sobjects::retrieve_by_external_id)
                .patch(sobjects::upsert)
                .delete(sobjects::delete_by_external_id),
        )
}

/// SOQL queries (REST and Tooling) and their next pages.
fn query_routes() -> Router<AppState> {
    Router::new()
        .route("/services/data/{version}/query", get(query::query))
        .route(
            "/services/data/{version}/query/{locator}",
            get(query::next_page),
        )
        .route("/services/data/{version}/queryAll", get(query::query_all))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query::next_page),
        )
        .route(
            "/services/data/{version}/tooling/query",
            get(tooling::query),
        )
}

/// Composite and sObject Collections.
fn composite_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/services/data/{version}/composite",
            post(composite::composite),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::create)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}",
            get(collections::retrieve).post(collections::retrieve_by_body),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}/{field}",
            patch(collections::upsert),
        )
}
