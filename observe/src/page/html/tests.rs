//! The page's HTML from status rows made here: every org and object named, values escaped,
//! progress bars for backfills, refusals by SQLSTATE, and a reload but no script.

use super::*;
use crate::page::RecentRefusals;

fn object(name: &str, phase: &str) -> ObjectStatus {
    ObjectStatus {
        object: name.to_owned(),
        table: name.to_ascii_lowercase(),
        enabled: true,
        phase: phase.to_owned(),
        backfill_done: 400,
        backfill_total: Some(1000),
        paused_reason: None,
        rows: 400,
        cursor: None,
        newest_modstamp: None,
        fresh_as_of: None,
        lag_seconds: Some(250.4),
        requests: 7,
        last_error: None,
        last_error_code: None,
        last_error_at: None,
        removed_fields: vec![],
        pending_fields: vec![],
        bulk_purpose: None,
        bulk_job_id: None,
        bulk_processed: None,
        source: "poll".to_owned(),
    }
}

fn org(name: &str) -> OrgStatus {
    OrgStatus {
        name: name.to_owned(),
        schema: name.to_owned(),
        enabled: true,
        state: "backfilling".to_owned(),
        lag_seconds: Some(3.0),
        paused_reason: None,
        api_used: Some(1200),
        api_max: Some(15000),
        api_seen_at: None,
        rate_requests: 1,
        rate_period_ms: 3000,
        max_daily_share: 0.8,
        lease_owner: Some("host-1:42".to_owned()),
        last_error: Some("the token endpoint said <script>alert(1)</script>".to_owned()),
        last_error_code: Some("invalid_grant".to_owned()),
        last_error_at: None,
        stream: None,
        event_streams: vec![],
        objects: vec![object("Account", "live"), object("Contact", "backfilling")],
    }
}

#[test]
fn the_page_names_every_org_and_object_and_escapes_what_it_shows() {
    let refusals = RecentRefusals::default();
    refusals.record(
        "23514",
        "Salesforce refused to create Invoice__c: Amount cannot be negative",
        Some("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
    );
    let html = page(
        &[org("acme"), org("globex")],
        Some(&refusals.seen()),
        Utc::now(),
        5,
    );
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "{html}"
    );
    for name in ["acme", "globex", "Account", "Contact", "host-1:42"] {
        assert!(html.contains(name), "{name} missing: {html}");
    }
    // The one script-looking text is the error's, escaped.
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(html.contains("<b>invalid_grant</b>"), "{html}");
    assert!(
        html.contains("<progress max=\"1000\" value=\"400\">40%</progress> 400/1000 (40%)"),
        "{html}"
    );
    assert!(html.contains("lag 3s"), "{html}");
    assert!(html.contains("4m 10s"), "{html}");
    assert!(html.contains("1200 of 15000 (8%); share 80%"), "{html}");
    assert!(
        html.contains("<td>23514</td><td class=\"n\">1</td>"),
        "{html}"
    );
    assert!(html.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"), "{html}");

    let without_proxy = page(&[], None, Utc::now(), 5);
    assert!(
        without_proxy.contains("No org is registered"),
        "{without_proxy}"
    );
    assert!(
        without_proxy.contains("This process runs no proxy."),
        "{without_proxy}"
    );
}

#[test]
fn lags_read_in_two_units() {
    assert_eq!(format_lag(3.2), "3s");
    assert_eq!(format_lag(250.4), "4m 10s");
    assert_eq!(format_lag(7_500.0), "2h 5m");
    assert_eq!(format_lag(90_000.0), "1d 1h");
    assert_eq!(format_lag(-1.0), "0s");
}

#[test]
fn escaping_covers_markup_and_quotes() {
    assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
}
