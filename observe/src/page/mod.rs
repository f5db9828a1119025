//! The status page at `/` of the listener: where every org and object stands, read from the
//! control schema's status rows at each request (the rows behind `sfpg status` and the view
//! `sfpg.status`), and the proxy's recent refusals by SQLSTATE. Server-side HTML that
//! reloads itself; GET only, nothing on it changes anything, and it shows no secret (the
//! status rows hold none: credentials stay sealed in `sfpg.orgs`).

mod html;
mod refusals;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use deadpool_postgres::{Manager, Pool};

pub use html::{escape, format_lag};
pub use refusals::{RECENT, RecentRefusals, RefusalsSeen, Refused, Tally};

use crate::ObserveError;

/// How often the page reloads itself.
pub const REFRESH_SECONDS: u32 = 5;

/// How long a request waits for the database before the page says it cannot read it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the page reads: the mirror database's status rows, and the refusals of this
/// process's proxy (if it runs one).
#[derive(Debug, Clone)]
pub struct PageState {
    pool: Pool,
    refusals: Option<RecentRefusals>,
}

impl PageState {
    /// Reads the status rows of `database` (connected at the first request, two
    /// connections at most); `refusals` when the process runs the proxy.
    pub fn new(
        database: tokio_postgres::Config,
        refusals: Option<RecentRefusals>,
    ) -> Result<PageState, ObserveError> {
        let manager = Manager::new(database, tokio_postgres::NoTls);
        let pool = Pool::builder(manager)
            .max_size(2)
            .build()
            .map_err(|error| ObserveError::Pool(error.to_string()))?;
        Ok(PageState { pool, refusals })
    }
}

/// The page's routes: `GET /` (and `/status`).
pub fn router(state: PageState) -> Router {
    Router::new()
        .route("/", get(show))
        .route("/status", get(show))
        .with_state(state)
}

async fn show(State(state): State<PageState>) -> Response {
    let loaded = tokio::time::timeout(READ_TIMEOUT, async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        sfpg_control::status::load(&**client)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("the mirror database did not answer in time".to_owned()));
    let refusals = state.refusals.as_ref().map(RecentRefusals::seen);
    let (status, body) = match loaded {
        Ok(orgs) => (
            StatusCode::OK,
            html::page(&orgs, refusals.as_ref(), Utc::now(), REFRESH_SECONDS),
        ),
        Err(error) => {
            tracing::warn!(%error, "the status page cannot read the status rows");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                html::unavailable(&error, REFRESH_SECONDS),
            )
        }
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}
