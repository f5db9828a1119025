//! `sfpg status`: where each org's and object's sync stands, as the control schema has it:
//! phase, rows, cursor, lag, requests, and what went wrong last. A table for people,
//! `--json` for scripts, and live progress bars for running backfills with `--watch` (which
//! `sfpg sync` also shows on a terminal).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sfpg_sync::status::{self, ObjectStatus, OrgStatus};
use tokio_util::sync::CancellationToken;

use crate::database;
use crate::errors::UserError;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Print JSON (one array of orgs with their objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// After the table, follow running backfills with progress bars until they finish.
    #[arg(long, conflicts_with = "json")]
    pub watch: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = database::connect(&args.database_url).await?;
    let statuses = load(&client).await?;
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
        follow_backfills(&client, &stop, true).await?;
    }
    Ok(())
}

/// The status of every org, with a hint when the control schema is not there yet.
async fn load(client: &tokio_postgres::Client) -> anyhow::Result<Vec<OrgStatus>> {
    match status::load(client).await {
        Ok(statuses) => Ok(statuses),
        // 42P01 undefined_table: nothing was ever set up in this database.
        Err(error) if error.sqlstate() == Some("42P01") => Err(UserError::new(
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
        let _ = write!(out, "org {} (schema {})", org.name, org.schema);
        if !org.enabled {
            out.push_str(", disabled");
        }
        if let (Some(used), Some(max)) = (org.api_used, org.api_max) {
            let share = if max > 0 {
                f64::from(used) * 100.0 / f64::from(max)
            } else {
                100.0
            };
            let _ = write!(out, ", API {used}/{max} today ({share:.0}%)");
        }
        if let Some(owner) = &org.lease_owner {
            let _ = write!(out, ", synced by {owner}");
        }
        out.push('\n');
        if let Some(reason) = &org.paused_reason {
            let _ = writeln!(out, "  polling paused: {reason}");
        }
        if let Some(error) = &org.last_error {
            let _ = writeln!(out, "  last org error: {error}");
        }
        let header = [
            "OBJECT",
            "PHASE",
            "ROWS",
            "CURSOR",
            "LAG",
            "REQUESTS",
            "LAST ERROR",
        ];
        let rows: Vec<[String; 7]> = org.objects.iter().map(object_row).collect();
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

fn object_row(object: &ObjectStatus) -> [String; 7] {
    let dash = || "-".to_owned();
    [
        object.object.clone(),
        object.phase_label(),
        object.rows.to_string(),
        object
            .cursor
            .map_or_else(dash, |c| c.format("%Y-%m-%d %H:%M:%S").to_string()),
        object.lag_seconds.map_or_else(dash, format_lag),
        object.requests.to_string(),
        object
            .last_error
            .as_deref()
            .map_or_else(dash, |e| e.chars().take(120).collect()),
    ]
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
    if !std::io::stdout().is_terminal() {
        if !until_done {
            stop.cancelled().await;
        }
        return Ok(());
    }
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
    let style = ProgressStyle::with_template(
        "{prefix:>24} [{bar:40}] {pos}/{len} ({percent}%) {per_sec} eta {eta}",
    )?
    .progress_chars("=> ");
    let mut shown: HashMap<String, ProgressBar> = HashMap::new();
    loop {
        let statuses = status::load(client).await?;
        let mut running = 0;
        for org in &statuses {
            for object in &org.objects {
                let key = format!("{}/{}", org.name, object.object);
                let backfilling = object.phase == "backfilling"
                    && object.enabled
                    && object.paused_reason.is_none();
                match (backfilling, object.backfill_total, shown.get(&key)) {
                    (true, Some(total), Some(bar)) => {
                        running += 1;
                        bar.set_length(u64::try_from(total).unwrap_or(0));
                        bar.set_position(u64::try_from(object.backfill_done).unwrap_or(0));
                    }
                    (true, Some(total), None) => {
                        running += 1;
                        let bar = bars.add(ProgressBar::new(u64::try_from(total).unwrap_or(0)));
                        bar.set_style(style.clone());
                        bar.set_prefix(key.clone());
                        bar.set_position(u64::try_from(object.backfill_done).unwrap_or(0));
                        shown.insert(key, bar);
                    }
                    (true, None, _) => running += 1,
                    (false, _, Some(_)) => {
                        if let Some(bar) = shown.remove(&key) {
                            bar.set_position(u64::try_from(object.backfill_done).unwrap_or(0));
                            bar.finish_with_message("done");
                        }
                    }
                    (false, _, None) => {}
                }
            }
        }
        if until_done && running == 0 {
            return Ok(());
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
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
            lag_seconds: Some(250.4),
            requests: 7,
            last_error: None,
            last_error_at: None,
            removed_fields: vec!["Legacy__c".to_owned()],
            pending_fields: vec![],
        }
    }

    #[test]
    fn the_table_shows_phase_rows_lag_and_notes() {
        let org = OrgStatus {
            name: "acme".into(),
            schema: "acme".into(),
            enabled: true,
            paused_reason: Some("daily API budget: 12000 of 15000 requests used".into()),
            api_used: Some(12000),
            api_max: Some(15000),
            api_seen_at: None,
            lease_owner: Some("host:42".into()),
            last_error: None,
            last_error_at: None,
            objects: vec![object("Account", "live"), object("Contact", "backfilling")],
        };
        let text = render(&[org]);
        assert!(
            text.starts_with(
                "org acme (schema acme), API 12000/15000 today (80%), synced by host:42\n"
            ),
            "{text}"
        );
        assert!(text.contains("polling paused: daily API budget"), "{text}");
        assert!(text.contains("backfilling 400/1000"), "{text}");
        assert!(text.contains("4m 10s"), "{text}");
        assert!(
            text.contains(
                "Account: fields gone from Salesforce, their columns kept unwritten: Legacy__c"
            ),
            "{text}"
        );
        let header = text.lines().nth(2).unwrap_or_default();
        assert!(header.trim_start().starts_with("OBJECT"), "{text}");
    }

    #[test]
    fn lags_read_in_two_units() {
        assert_eq!(format_lag(3.2), "3s");
        assert_eq!(format_lag(7_500.0), "2h 5m");
        assert_eq!(format_lag(-1.0), "0s");
    }
}
