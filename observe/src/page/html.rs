//! The status page's HTML, rendered on the server from the status rows: one table of orgs,
//! one of objects, and the proxy's refusals by SQLSTATE. Every value is escaped (an error
//! message or a worker's name is text, never markup), the page refreshes itself with a meta
//! refresh, and it runs no script.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use sfpg_control::status::{ObjectStatus, OrgStatus};
use sfpg_control::streams::{StreamState, StreamTransport};

use super::refusals::RefusalsSeen;

/// Text made safe to put in HTML, in an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin-bottom:2em;width:100%}\
th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.state{font-weight:600}.bad{color:#b00020}.ok{color:#1b7f3b}.quiet{color:#777}\
progress{width:10em}.error{max-width:40em;overflow-wrap:anywhere}";

/// The whole page, as of `now`, reloading every `refresh_seconds`. `refusals` is `None` in
/// a process that runs no proxy.
pub fn page(
    orgs: &[OrgStatus],
    refusals: Option<&RefusalsSeen>,
    now: DateTime<Utc>,
    refresh_seconds: u32,
) -> String {
    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh_seconds}\">\
         <title>sfpg status</title><style>{STYLE}</style></head><body>\
         <h1>sfpg status</h1><p class=\"quiet\">As of {} UTC; this page reloads every \
         {refresh_seconds} s.</p>",
        now.format("%Y-%m-%d %H:%M:%S")
    );
    orgs_table(&mut out, orgs);
    objects_table(&mut out, orgs);
    refusals_table(&mut out, refusals);
    out.push_str("</body></html>\n");
    out
}

/// The page when the status rows cannot be read, saying why.
pub fn unavailable(error: &str, refresh_seconds: u32) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{refresh_seconds}\">\
         <title>sfpg status</title><style>{STYLE}</style></head><body><h1>sfpg status</h1>\
         <p class=\"bad\">Cannot read the status from the mirror database: {}</p>\
         </body></html>\n",
        escape(error)
    )
}

fn orgs_table(out: &mut String, orgs: &[OrgStatus]) {
    out.push_str(
        "<h2>Orgs</h2><table id=\"orgs\"><tr><th>Org</th><th>State</th><th>Worker</th>\
         <th>Freshness</th><th>Stream</th><th>Budget used</th><th>Last error</th></tr>",
    );
    if orgs.is_empty() {
        out.push_str("<tr><td colspan=\"7\">No org is registered (sfpg org add).</td></tr>");
    }
    for org in orgs {
        let state_class = match org.state.as_str() {
            "streaming" | "polling" | "backfilling" => "ok",
            "disabled" => "quiet",
            _ => "bad",
        };
        let worker = match (&org.lease_owner, org.enabled) {
            (Some(owner), _) => escape(owner),
            (None, true) => "<span class=\"bad\">not being synced</span>".to_owned(),
            (None, false) => "-".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"state {state_class}\">{}</td><td>{worker}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
            escape(&org.name),
            escape(&org.state),
            org.lag_seconds
                .map_or_else(|| "-".to_owned(), |lag| format!("lag {}", format_lag(lag))),
            stream_cell(org),
            budget_cell(org),
            error_cell(org.last_error.as_deref(), org.last_error_code.as_deref()),
        );
    }
    out.push_str("</table>");
}

/// `connected over Pub/Sub`, `down (why)`, `off`.
fn stream_cell(org: &OrgStatus) -> String {
    let Some(stream) = org.stream.as_ref().filter(|s| s.cdc_enabled) else {
        return "<span class=\"quiet\">off</span>".to_owned();
    };
    let (state, class) = match stream.state {
        StreamState::Connected => ("connected", "ok"),
        StreamState::CatchingUp => ("catching up", "ok"),
        StreamState::Down => ("down", "bad"),
    };
    let mut cell = format!("<span class=\"{class}\">{state}</span>");
    if let Some(transport) = stream
        .transport
        .filter(|_| stream.state != StreamState::Down)
    {
        cell.push_str(match transport {
            StreamTransport::PubSub => " over Pub/Sub",
            StreamTransport::CometD => " over CometD",
        });
    }
    if let Some(reason) = &stream.reason {
        let _ = write!(cell, " ({})", escape(reason));
    }
    cell
}

/// `1200 of 15000 (8%); share 80%`.
fn budget_cell(org: &OrgStatus) -> String {
    let share = format!("share {:.0}%", org.max_daily_share * 100.0);
    let mut cell = match (org.api_used, org.api_max) {
        (Some(used), Some(max)) if max > 0 => format!(
            "{used} of {max} ({:.0}%); {share}",
            f64::from(used) * 100.0 / f64::from(max)
        ),
        _ => format!("not known yet; {share}"),
    };
    if let Some(reason) = &org.paused_reason {
        let _ = write!(
            cell,
            "<br><span class=\"bad\">paused: {}</span>",
            escape(reason)
        );
    }
    cell
}

/// `[CODE] message`, or `-`.
fn error_cell(error: Option<&str>, code: Option<&str>) -> String {
    match (error, code) {
        (Some(error), Some(code)) => format!("<b>{}</b> {}", escape(code), escape(error)),
        (Some(error), None) => escape(error),
        (None, _) => "-".to_owned(),
    }
}

fn objects_table(out: &mut String, orgs: &[OrgStatus]) {
    out.push_str(
        "<h2>Objects</h2><table id=\"objects\"><tr><th>Org</th><th>Object</th><th>Phase</th>\
         <th>Rows</th><th>Progress</th><th>Lag</th><th>Source</th><th>Last error</th></tr>",
    );
    for org in orgs {
        for object in &org.objects {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
                 <td class=\"n\">{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
                escape(&org.name),
                escape(&object.object),
                escape(&object.phase_label()),
                object.rows,
                progress_cell(object),
                object
                    .lag_seconds
                    .map_or_else(|| "-".to_owned(), format_lag),
                escape(&object.source),
                error_cell(
                    object.last_error.as_deref(),
                    object.last_error_code.as_deref()
                ),
            );
        }
    }
    out.push_str("</table>");
}

/// A backfill's bar (`<progress>`, done of total), or a Bulk job's records processed.
fn progress_cell(object: &ObjectStatus) -> String {
    let backfilling = object.phase == "backfilling";
    match (backfilling, object.backfill_total) {
        (true, Some(total)) if total > 0 => {
            let done = object.backfill_done.clamp(0, total);
            #[allow(clippy::cast_precision_loss)]
            let percent = done as f64 * 100.0 / total as f64;
            let mut cell = format!(
                "<progress max=\"{total}\" value=\"{done}\">{percent:.0}%</progress> \
                 {done}/{total} ({percent:.0}%)"
            );
            if let Some(note) = object.bulk_note() {
                let _ = write!(cell, "<br>{}", escape(&note));
            }
            cell
        }
        _ => match object.bulk_note() {
            Some(note) => escape(&note),
            None if backfilling => "counting".to_owned(),
            None => "-".to_owned(),
        },
    }
}

fn refusals_table(out: &mut String, refusals: Option<&RefusalsSeen>) {
    out.push_str("<h2>Proxy refusals by SQLSTATE</h2>");
    let Some(refusals) = refusals else {
        out.push_str("<p class=\"quiet\">This process runs no proxy.</p>");
        return;
    };
    out.push_str(
        "<table id=\"refusals\"><tr><th>SQLSTATE</th><th>Refused</th><th>Last at</th>\
         <th>Last detail</th><th>Last message</th></tr>",
    );
    if refusals.by_sqlstate.is_empty() {
        out.push_str("<tr><td colspan=\"5\">None since this process started.</td></tr>");
    }
    for tally in &refusals.by_sqlstate {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"error\">{}</td></tr>",
            escape(&tally.sqlstate),
            tally.count,
            tally.last.at.format("%Y-%m-%d %H:%M:%S"),
            tally
                .last
                .detail
                .as_deref()
                .map_or_else(|| "-".to_owned(), escape),
            escape(&tally.last.message),
        );
    }
    out.push_str("</table>");
}

/// `3s`, `4m 10s`, `2h 5m`, `3d 4h`: the two largest units.
pub fn format_lag(seconds: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = seconds.max(0.0) as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m {secs}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests;
