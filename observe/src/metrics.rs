//! The catalogue of sfpg's metrics: every name the crates record (through the `metrics`
//! facade, with literal names), its kind, unit and help, described in one place.
//!
//! Prometheus conventions: base units (seconds), `_total` on counters, and `org` the only
//! unbounded label; every other label takes a fixed set of values, listed in the help.

use metrics::Unit;

/// A metric's kind, as Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
    }
}

/// Histogram buckets of every `_seconds` histogram (pushes and their Salesforce share): from
/// a cached 5 ms to a 2-minute composite push.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

use Kind::{Counter, Gauge, Histogram};

/// Every metric sfpg records.
pub const CATALOGUE: &[Metric] = &[
    // The sync.
    metric(
        "sfpg_freshness_lag_seconds",
        Gauge,
        Unit::Seconds,
        "How far behind Salesforce the object's mirror may be: since the start of the last \
         poll that came back caught up, or the last event or keepalive of its stream.",
    ),
    metric(
        "sfpg_seconds_since_last_success",
        Gauge,
        Unit::Seconds,
        "Seconds since the object's last successful poll or applied change event.",
    ),
    metric(
        "sfpg_records_written_total",
        Counter,
        Unit::Count,
        "Records written to the mirror, by source (backfill, poll, cdc, bulk, write_back).",
    ),
    metric(
        "sfpg_api_requests_total",
        Counter,
        Unit::Count,
        "Requests to Salesforce, by kind (auth, query, bulk, composite, sobjects, limits, \
         streaming, pubsub, versions, rest) and outcome (ok, auth, limit, client_error, \
         server_error, network).",
    ),
    metric(
        "sfpg_api_daily_usage",
        Gauge,
        Unit::Count,
        "API requests the org has used today, as Salesforce last reported (Sforce-Limit-Info).",
    ),
    metric(
        "sfpg_api_daily_allocation",
        Gauge,
        Unit::Count,
        "The org's daily API request allocation, as Salesforce last reported.",
    ),
    metric(
        "sfpg_api_daily_share",
        Gauge,
        Unit::Count,
        "The share of the org's daily allocation background sync may use, a fraction \
         (sfpg org set-budget --max-daily-share); above it polling pauses.",
    ),
    metric(
        "sfpg_rate_limiter_wait_seconds",
        Histogram,
        Unit::Seconds,
        "Time each request waited for the org's rate limiter (_sum: the total wait).",
    ),
    metric(
        "sfpg_cdc_state",
        Gauge,
        Unit::Count,
        "1 for the org's current change-stream state (connected, catching_up, down), 0 for \
         the others; all 0 while Change Data Capture is off.",
    ),
    metric(
        "sfpg_cdc_last_replay_age_seconds",
        Gauge,
        Unit::Seconds,
        "Age of the replay id the org's stream last stored (against the 72 h retention).",
    ),
    metric(
        "sfpg_cdc_gaps_total",
        Counter,
        Unit::Count,
        "Gap and overflow events received, each resynced by polling.",
    ),
    metric(
        "sfpg_cdc_resubscribes_total",
        Counter,
        Unit::Count,
        "Times the org's stream subscribed again, by reason (auth, unavailable, handshake, \
         replay_invalid, down, reload).",
    ),
    metric(
        "sfpg_bulk_jobs",
        Gauge,
        Unit::Count,
        "The org's Bulk API 2.0 query reads open now, by state (creating, running).",
    ),
    metric(
        "sfpg_bulk_jobs_failed_total",
        Counter,
        Unit::Count,
        "Bulk API 2.0 query jobs that will not deliver (failed, aborted, expired), each \
         replaced by a new job.",
    ),
    // Leases (workers).
    metric(
        "sfpg_leases_held",
        Gauge,
        Unit::Count,
        "Org leases this worker holds.",
    ),
    metric(
        "sfpg_lease_epoch_changes_total",
        Counter,
        Unit::Count,
        "Leases this worker took with a new epoch.",
    ),
    metric(
        "sfpg_lease_fenced_total",
        Counter,
        Unit::Count,
        "Writes refused because this worker's lease epoch was no longer current.",
    ),
    // The proxy.
    metric(
        "sfpg_proxy_client_connections",
        Gauge,
        Unit::Count,
        "Client sessions open on the proxy.",
    ),
    metric(
        "sfpg_proxy_transactions_total",
        Counter,
        Unit::Count,
        "Write transactions ended, by outcome (committed, refused, unknown); refusals carry \
         the SQLSTATE class sent to the client.",
    ),
    metric(
        "sfpg_proxy_push_seconds",
        Histogram,
        Unit::Seconds,
        "Time from COMMIT to the outcome of pushing the transaction's writes to Salesforce.",
    ),
    metric(
        "sfpg_proxy_push_salesforce_seconds",
        Histogram,
        Unit::Seconds,
        "The part of a push spent waiting for Salesforce's answers.",
    ),
    metric(
        "sfpg_proxy_journal_pending_repair",
        Gauge,
        Unit::Count,
        "Journal entries whose outcome is unknown, waiting for repair.",
    ),
    metric(
        "sfpg_proxy_bulk_records_total",
        Counter,
        Unit::Count,
        "Records pushed through Bulk API 2.0 ingest jobs, by outcome.",
    ),
];

/// Hands every metric's help and unit to the installed recorder.
pub fn describe() {
    for metric in CATALOGUE {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.unit, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.unit, metric.help),
            Kind::Histogram => {
                metrics::describe_histogram!(metric.name, metric.unit, metric.help)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_alerts_use_metrics_of_the_catalogue() {
        let alerts = include_str!("../../deploy/prometheus/alerts.yml");
        let mut used = 0;
        for (at, _) in alerts.match_indices("sfpg_") {
            let name: String = alerts[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                CATALOGUE.iter().any(|m| m.name == name || m.name == base),
                "alerts.yml names {name}, which sfpg does not record"
            );
            used += 1;
        }
        assert!(used >= 6, "{used} metric names in alerts.yml");
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for metric in CATALOGUE {
            assert!(metric.name.starts_with("sfpg_"), "{}", metric.name);
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                metric.name
            );
            if metric.unit == Unit::Seconds {
                assert!(
                    metric.name.ends_with("_seconds")
                        || metric.name.ends_with("_seconds_total")
                        || metric.name == "sfpg_seconds_since_last_success",
                    "{}: seconds in the name",
                    metric.name
                );
            }
        }
    }
}
