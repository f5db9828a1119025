//! What the proxy records for `/metrics` (through the `metrics` facade, a no-op until a
//! process installs a recorder): client connections, write transactions by outcome, how
//! long pushes take and Salesforce's share, journal entries waiting for repair, and the
//! records written back into the mirror.

use std::time::Duration;

use crate::push::Refusal;

/// A client connection accepted (until [`client_disconnected`]).
pub fn client_connected() {
    client_connected_by(1.0);
}

/// `count` more client connections (0: the gauge shows, unchanged).
pub fn client_connected_by(count: f64) {
    metrics::gauge!("sfpg_proxy_client_connections").increment(count);
}

/// A client connection closed.
pub fn client_disconnected() {
    metrics::gauge!("sfpg_proxy_client_connections").decrement(1.0);
}

/// A write transaction whose push Salesforce accepted, on its way to COMMIT.
pub fn committed() {
    metrics::counter!("sfpg_proxy_transactions_total", "outcome" => "committed").increment(1);
}

/// A write transaction refused: `unknown` when Salesforce may have carried it out (its
/// answer never came, or the client cancelled it under way), else `refused`, with the
/// class (first two characters) of the SQLSTATE the client got.
pub fn refused(refusal: &Refusal) {
    // The status page lists the refusals by SQLSTATE, as the client got them.
    sfpg_observe::page::RecentRefusals::global().record(
        refusal.sqlstate.code(),
        &refusal.message,
        refusal.detail.as_deref(),
    );
    if refusal.outcome_unknown
        || refusal.sqlstate == tokio_postgres::error::SqlState::TRANSACTION_RESOLUTION_UNKNOWN
    {
        metrics::counter!("sfpg_proxy_transactions_total", "outcome" => "unknown").increment(1);
        return;
    }
    let class = refusal.sqlstate.code().get(..2).unwrap_or("XX").to_owned();
    metrics::counter!(
        "sfpg_proxy_transactions_total",
        "outcome" => "refused",
        "sqlstate_class" => class
    )
    .increment(1);
}

/// A push to the org took `took`, from its plan to its outcome.
pub fn push_took(took: Duration) {
    metrics::histogram!("sfpg_proxy_push_seconds").record(took.as_secs_f64());
}

/// A push's request waited `took` for Salesforce's answer.
pub fn salesforce_took(took: Duration) {
    metrics::histogram!("sfpg_proxy_push_salesforce_seconds").record(took.as_secs_f64());
}

/// Journal entries the repair still has to settle.
#[allow(clippy::cast_precision_loss)]
pub fn journal_pending_repair(entries: i64) {
    metrics::gauge!("sfpg_proxy_journal_pending_repair").set(entries as f64);
}

/// Records written back into the mirror of `org` after a push (what Salesforce set).
pub fn written_back(org: &str, records: u64) {
    if records > 0 {
        metrics::counter!(
            "sfpg_records_written_total",
            "org" => org.to_owned(),
            "source" => "write_back"
        )
        .increment(records);
    }
}
