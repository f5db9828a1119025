//! `sfpg status`: where each org's and object's sync stands, as the control schema has it:
//! API requests used today against the allocation and the budget, the rate limit, phase,
//! rows, cursor, lag (how far behind Salesforce the mirror may be: the time since it was last
//! known complete, by a poll that caught up or the stream's last event or keepalive),
//! requests, and what went wrong last with Salesforce's code. A table for people, `--json` for
//! scripts, and with `--watch` the backfills followed until they finish: progress bars on a
//! terminal (which `sfpg sync` also shows), one line per change otherwise.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sfpg_control::events::EventCheckpoint;
use sfpg_control::status::{self, ObjectStatus, OrgStatus};
use sfpg_control::streams::{StreamState, StreamStatus, StreamTransport};
use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;

use crate::database;
use crate::errors::UserError;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this org.
    pub name: Option<String>,
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Print JSON (one array of orgs with their objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// After the table, follow the backfills (those running and those about to start) until
    /// they finish: progress bars on a terminal, a line per change otherwise.
    #[arg(long, conflicts_with = "json")]
    pub watch: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = database::connect(&args.database_url).await?;
    let statuses = load(&client, args.name.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(());
    }
    if statuses.is_empty() {
        println!("no orgs registered; add one with `sfpg org add`");
        return Ok(());
    }
    print!("{}", render(&statuses));
    if args.watch {
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        if std::io::stdout().is_terminal() {
            show_progress_bars(&client, args.name.as_deref(), &stop, true).await?;
        } else {
            print_backfills(&client, args.name.as_deref(), &stop).await?;
        }
    }
    Ok(())
}

/// The status of every org (or only of `name`), with a hint when the control schema is not
/// there yet.
async fn load(
    client: &tokio_postgres::Client,
    name: Option<&str>,
) -> anyhow::Result<Vec<OrgStatus>> {
    match status::load(client).await {
        Ok(mut statuses) => {
            if let Some(name) = name {
                statuses.retain(|org| org.name == name);
                if statuses.is_empty() {
                    return Err(UserError::new(format!("no org named {name}")).into());
                }
            }
            Ok(statuses)
        }
        // Nothing was ever set up in this database.
        Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => Err(UserError::new(
            "this database has no sfpg control schema; run `sfpg migrate` and `sfpg org add` first",
        )
        .into()),
        Err(error) => Err(error).context("cannot read the sync status"),
    }
}

/// The status as text: per org a heading line, then one row per object.
pub fn render(statuses: &[OrgStatus]) -> String {
    let mut out = String::new();
    for org in statuses {
        let _ = write!(
            out,
            "org {} (schema {}) {}",
            org.name, org.schema, org.state
        );
        match &org.lease_owner {
            Some(owner) => {
                let _ = write!(out, ", synced by {owner}");
            }
            None if org.enabled => out.push_str(", not being synced"),
            None => {}
        }
        if let Some(lag) = org.lag_seconds {
            let _ = write!(out, ", lag {}", format_lag(lag));
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "  {}; rate limit {}",
            usage_line(org),
            describe_rate(org.rate_requests, org.rate_period_ms)
        );
        if let Some(stream) = &org.stream {
            let _ = writeln!(out, "  {}", stream_line(stream));
        }
        for events in &org.event_streams {
            let _ = writeln!(out, "  {}", event_stream_line(events));
        }
        if let Some(reason) = &org.paused_reason {
            let _ = writeln!(out, "  polling paused: {reason}");
        }
        if let Some(error) = &org.last_error {
            let _ = writeln!(
                out,
                "  last org error: {}",
                with_code(error, org.last_error_code.as_deref())
            );
        }
        object_table(&mut out, org);
        for object in &org.objects {
            if let Some(reason) = &object.paused_reason {
                let _ = writeln!(out, "  {} paused: {reason}", object.object);
            }
            if !object.removed_fields.is_empty() {
                let _ = writeln!(
                    out,
                    "  {}: fields gone from Salesforce, their columns kept unwritten: {}",
                    object.object,
                    object.removed_fields.join(", ")
                );
            }
        }
        out.push('\n');
    }
    out
}

/// The org's objects as a table: one line each, columns as wide as their widest cell.
fn object_table(out: &mut String, org: &OrgStatus) {
    let header = [
        "OBJECT",
        "PHASE",
        "SOURCE",
        "ROWS",
        "CURSOR",
        "LAG",
        "REQUESTS",
        "LAST ERROR",
    ];
    let rows: Vec<[String; 8]> = org.objects.iter().map(object_row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::from("  ");
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&header.map(str::to_owned)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
}

/// `API requests today: 1200 of 15000 (8%), budget 80% (12000)`: the org's usage as
/// Salesforce last reported it (every client of the org counts), against the share
/// background sync may use.
fn usage_line(org: &OrgStatus) -> String {
    let budget = format!("{:.0}%", org.max_daily_share * 100.0);
    match (org.api_used, org.api_max) {
        (Some(used), Some(max)) => {
            let share = if max > 0 {
                f64::from(used) * 100.0 / f64::from(max)
            } else {
                100.0
            };
            let allowed = (f64::from(max) * org.max_daily_share).floor();
            // The sync saves what Salesforce last reported to it; the proxy's and the
            // stream's requests count too, but are not saved: how old the figure is.
            let reported = org.api_seen_at.map_or_else(String::new, |seen| {
                format!(
                    " as reported {} ago",
                    format_lag(seconds_since(seen.timestamp_millis()))
                )
            });
            format!(
                "API requests today: {used} of {max} ({share:.0}%){reported}, budget {budget} ({allowed})"
            )
        }
        _ => format!("API requests today: not known yet, budget {budget}"),
    }
}

/// Seconds from `then_ms` (milliseconds since the epoch) to now.
fn seconds_since(then_ms: i64) -> f64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    (now_ms - then_ms) as f64 / 1000.0
}

/// `1 request per 3s`, `5 requests per 1s`.
fn describe_rate(requests: i32, period_ms: i64) -> String {
    let period = Duration::from_millis(u64::try_from(period_ms).unwrap_or(0));
    let noun = if requests == 1 { "request" } else { "requests" };
    format!(
        "{requests} {noun} per {}",
        humantime::format_duration(period)
    )
}

/// `stream: connected over Pub/Sub [transport auto: the Pub/Sub endpoint answers], replay id
/// 4711 (saved 2s ago), lag 45 ms; 1200 events (30 echoes of sfpg's own writes), 0 gaps`,
/// or `stream: off (set-cdc)`.
fn stream_line(stream: &StreamStatus) -> String {
    if !stream.cdc_enabled {
        return "stream: off (sfpg org set-cdc NAME on to stream)".to_owned();
    }
    let mut line = format!(
        "stream: {}",
        match stream.state {
            StreamState::Connected => "connected",
            StreamState::CatchingUp => "catching up",
            StreamState::Down => "down",
        }
    );
    if let Some(reason) = &stream.reason {
        let _ = write!(line, " ({reason})");
    }
    if let Some(transport) = stream.transport {
        let _ = write!(
            line,
            " over {}",
            match transport {
                StreamTransport::PubSub => "Pub/Sub",
                StreamTransport::CometD => "CometD",
            }
        );
        if let Some(why) = &stream.transport_reason {
            let _ = write!(line, " [{why}]");
        }
    }
    match (stream.replay_id, stream.replay_age_seconds) {
        (Some(id), Some(age)) => {
            let _ = write!(line, ", replay id {id} (saved {} ago)", format_lag(age));
        }
        (Some(id), None) => {
            let _ = write!(line, ", replay id {id}");
        }
        _ => line.push_str(", no replay id yet"),
    }
    if let Some(lag) = stream.last_lag_ms {
        let _ = write!(line, ", lag {lag} ms");
    }
    let _ = write!(
        line,
        "; {} events ({} echoes of sfpg's own writes), {} gaps",
        stream.events, stream.echoes, stream.gaps
    );
    line
}

/// `events Order_Event__e: connected, replay id 4711 (saved 2s ago), 12 events`.
fn event_stream_line(events: &EventCheckpoint) -> String {
    let mut line = format!("events {}: {}", events.event_name, events.state);
    if let Some(reason) = &events.state_reason {
        let _ = write!(line, " ({reason})");
    }
    if let Some(id) = events.replay_id {
        let _ = write!(line, ", replay id {id}");
        if let Some(saved) = events.saved_at {
            let _ = write!(
                line,
                " (saved {} ago)",
                format_lag(seconds_since(saved.timestamp_millis()))
            );
        }
    }
    let _ = write!(line, ", {} events", events.events);
    line
}

fn object_row(object: &ObjectStatus) -> [String; 8] {
    let dash = || "-".to_owned();
    [
        object.object.clone(),
        object.phase_label(),
        object.source.clone(),
        object.rows.to_string(),
        object
            .cursor
            .map_or_else(dash, |c| c.format("%Y-%m-%d %H:%M:%S").to_string()),
        object.lag_seconds.map_or_else(dash, format_lag),
        object.requests.to_string(),
        object.last_error.as_deref().map_or_else(dash, |e| {
            with_code(e, object.last_error_code.as_deref())
                .chars()
                .take(120)
                .collect()
        }),
    ]
}

/// `[REQUEST_LIMIT_EXCEEDED] …`: an error with Salesforce's code in front, when it had one.
fn with_code(error: &str, code: Option<&str>) -> String {
    match code {
        Some(code) => format!("[{code}] {error}"),
        None => error.to_owned(),
    }
}

/// `3s`, `4m 10s`, `2h 5m`: whole seconds, the two largest units.
fn format_lag(seconds: f64) -> String {
    let whole = Duration::from_secs(seconds.max(0.0) as u64);
    let text = humantime::format_duration(whole).to_string();
    text.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

/// Shows a progress bar per running backfill, refreshed from the control schema, until
/// `stop` (or, with `until_done`, until no backfill is left). Draws only on a terminal.
pub async fn follow_backfills(
    client: &tokio_postgres::Client,
    stop: &CancellationToken,
    until_done: bool,
) -> anyhow::Result<()> {
    show_progress_bars(client, None, stop, until_done).await
}

/// [`follow_backfills`] for one org, or all.
async fn show_progress_bars(
    client: &tokio_postgres::Client,
    name: Option<&str>,
    stop: &CancellationToken,
    until_done: bool,
) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        if !until_done {
            stop.cancelled().await;
        }
        return Ok(());
    }
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
    let style = ProgressStyle::with_template(
        "{prefix:>24} [{bar:40}] {pos}/{len} ({percent}%) {per_sec} eta {eta} {msg}",
    )?
    .progress_chars("=> ");
    let mut shown: HashMap<String, ProgressBar> = HashMap::new();
    loop {
        let statuses = load(client, name).await?;
        let mut pending = 0;
        for org in &statuses {
            for object in &org.objects {
                if backfill_pending(org, object) {
                    pending += 1;
                }
                let key = format!("{}/{}", org.name, object.object);
                let backfilling = object.phase == "backfilling"
                    && object.enabled
                    && object.paused_reason.is_none();
                match (backfilling, object.backfill_total, shown.get(&key)) {
                    (true, Some(total), Some(bar)) => {
                        bar.set_length(u64::try_from(total).unwrap_or(0));
                        bar.set_position(u64::try_from(object.backfill_done).unwrap_or(0));
                        bar.set_message(object.bulk_note().unwrap_or_default());
                    }
                    (true, Some(total), None) => {
                        let bar = bars.add(ProgressBar::new(u64::try_from(total).unwrap_or(0)));
                        bar.set_style(style.clone());
                        bar.set_prefix(key.clone());
                        bar.set_position(u64::try_from(object.backfill_done).unwrap_or(0));
                        bar.set_message(object.bulk_note().unwrap_or_default());
                        shown.insert(key, bar);
                    }
                    (false, _, Some(_)) => {
                        if let Some(bar) = shown.remove(&key) {
                            bar.set_position(u64::try_from(object.backfill_done).unwrap_or(0));
                            bar.finish_with_message("done");
                        }
                    }
                    (true, None, _) | (false, _, None) => {}
                }
            }
        }
        if until_done && pending == 0 {
            return Ok(());
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
    }
}

/// How often `--watch` reads the control schema again.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Whether `object` still has its backfill ahead of it or under way: it is being described
/// (a backfill follows) or backfilled, and neither it nor its org is switched off or paused.
fn backfill_pending(org: &OrgStatus, object: &ObjectStatus) -> bool {
    org.enabled
        && object.enabled
        && object.paused_reason.is_none()
        && matches!(object.phase.as_str(), "describing" | "backfilling")
}

/// `--watch` without a terminal: a line whenever an object's phase or backfill progress
/// changes, until no backfill is pending (or `stop`).
async fn print_backfills(
    client: &tokio_postgres::Client,
    name: Option<&str>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut shown: HashMap<String, String> = HashMap::new();
    let mut first = true;
    loop {
        let statuses = load(client, name).await?;
        let mut pending = 0;
        for org in &statuses {
            for object in &org.objects {
                if backfill_pending(org, object) {
                    pending += 1;
                }
                let key = format!("{}/{}", org.name, object.object);
                let label = object.phase_label();
                // The table above already shows where each object started from.
                if !first && shown.get(&key) != Some(&label) {
                    println!("{key} {label}");
                }
                shown.insert(key, label);
            }
        }
        first = false;
        if pending == 0 {
            println!("no backfill pending");
            return Ok(());
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            removed_fields: vec!["Legacy__c".to_owned()],
            pending_fields: vec![],
            bulk_purpose: None,
            bulk_job_id: None,
            bulk_processed: None,
            source: "stream".to_owned(),
        }
    }

    #[test]
    fn the_table_shows_phase_rows_lag_and_notes() {
        let org = OrgStatus {
            name: "acme".into(),
            schema: "acme".into(),
            enabled: true,
            state: "budget_exhausted".into(),
            lag_seconds: Some(250.4),
            paused_reason: Some("daily API budget: 12000 of 15000 requests used".into()),
            api_used: Some(12000),
            api_max: Some(15000),
            api_seen_at: None,
            rate_requests: 1,
            rate_period_ms: 3000,
            max_daily_share: 0.8,
            lease_owner: Some("host:42".into()),
            last_error: None,
            last_error_code: None,
            last_error_at: None,
            event_streams: vec![EventCheckpoint {
                event_name: "Order_Event__e".into(),
                replay_id: Some(4711),
                saved_at: None,
                state: "connected".into(),
                state_reason: None,
                events: 12,
                last_event_at: None,
            }],
            stream: Some(StreamStatus {
                cdc_enabled: true,
                cdc_transport: sfpg_control::streams::CdcTransport::Auto,
                transport: Some(StreamTransport::CometD),
                transport_reason: Some(
                    "transport auto: the Pub/Sub endpoint cannot be reached".into(),
                ),
                state: StreamState::Connected,
                reason: None,
                since: None,
                replay_id: Some(4711),
                replay_age_seconds: Some(2.4),
                last_lag_ms: Some(45),
                events: 1200,
                echoes: 30,
                gaps: 1,
            }),
            objects: vec![object("Account", "live"), object("Contact", "backfilling")],
        };
        let text = render(std::slice::from_ref(&org));
        assert!(
            text.starts_with(
                "org acme (schema acme) budget_exhausted, synced by host:42, lag 4m 10s\n  API requests today: 12000 of 15000 \
                 (80%), budget 80% (12000); rate limit 1 request per 3s\n"
            ),
            "{text}"
        );
        assert!(text.contains("polling paused: daily API budget"), "{text}");
        // How old the figure is, once the sync has saved it.
        let mut seen = org.clone();
        seen.api_seen_at = Some(chrono::Utc::now() - chrono::Duration::seconds(65));
        let usage = usage_line(&seen);
        assert!(
            usage.contains("12000 of 15000 (80%) as reported 1m 5s ago, budget"),
            "{usage}"
        );
        assert!(
            text.contains("  events Order_Event__e: connected, replay id 4711, 12 events\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  stream: connected over CometD [transport auto: the Pub/Sub endpoint cannot be \
                 reached], replay id 4711 (saved 2s ago), lag 45 ms; 1200 events \
                 (30 echoes of sfpg's own writes), 1 gaps\n"
            ),
            "{text}"
        );
        assert!(text.contains("backfilling 400/1000"), "{text}");
        assert!(text.contains("4m 10s"), "{text}");
        assert!(
            text.contains(
                "Account: fields gone from Salesforce, their columns kept unwritten: Legacy__c"
            ),
            "{text}"
        );
        // After the heading, usage, stream, events and paused lines.
        let header = text.lines().nth(5).unwrap_or_default();
        assert!(header.trim_start().starts_with("OBJECT"), "{text}");

        let unsynced = OrgStatus {
            lease_owner: None,
            api_used: None,
            rate_requests: 5,
            rate_period_ms: 1000,
            ..org
        };
        let text = render(&[unsynced]);
        assert!(
            text.starts_with(
                "org acme (schema acme) budget_exhausted, not being synced, lag 4m 10s\n  API requests today: not known yet, \
                 budget 80%; rate limit 5 requests per 1s\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn lags_read_in_two_units() {
        assert_eq!(format_lag(3.2), "3s");
        assert_eq!(format_lag(7_500.0), "2h 5m");
        assert_eq!(format_lag(-1.0), "0s");
    }
}
