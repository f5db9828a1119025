//! How `sfpg demo` shows the Bulk API 2.0: the largest object backfills through a query
//! job, and the demo says so, and what the job cost.

use sfpg_control::admin;
use sfpg_emulator::http::RunningEmulator;

use crate::commands::org::{control_client, user_facing};

/// The demo shows the Bulk API 2.0 without a step of its own: the org's bulk threshold is
/// lowered to the record count of its largest object (the default, 50,000, is more than
/// a demo org holds), so that object backfills through one query job while the others
/// read REST pages; and it says so. Returns the objects read through Bulk.
pub async fn show_bulk(
    database_url: &str,
    emulator: &RunningEmulator,
    org: &str,
    objects: &[&str],
) -> anyhow::Result<Vec<String>> {
    let counts: Vec<(&str, usize)> = objects
        .iter()
        .map(|object| (*object, emulator.with_org(|org| org.record_count(object))))
        .collect();
    let largest = counts.iter().map(|(_, count)| *count).max().unwrap_or(0);
    if largest == 0 {
        return Ok(Vec::new());
    }
    let client = control_client(database_url).await?;
    admin::set_bulk_threshold(&client, org, Some(largest as u64))
        .await
        .map_err(user_facing)?;
    let bulk: Vec<String> = counts
        .iter()
        .filter(|(_, count)| *count >= largest)
        .map(|(object, _)| (*object).to_owned())
        .collect();
    println!(
        "  {} ({largest} records) backfills through a Bulk API 2.0 query job, its CSV pages \
         streamed into COPY: the demo sets the org's bulk threshold to {largest} records \
         (by default 50,000; `sfpg org set-bulk-threshold`); the other objects read REST pages",
        bulk.join(", ")
    );
    Ok(bulk)
}

/// How many requests the Bulk backfill took, from the emulator's request log.
pub fn print_bulk_jobs(emulator: &RunningEmulator, bulk: &[String]) {
    if bulk.is_empty() {
        return;
    }
    let requests = emulator
        .requests(0)
        .iter()
        .filter(|r| r.path.contains("/jobs/query"))
        .count();
    let jobs = emulator
        .requests(0)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/query"))
        .count();
    println!(
        "  {} came through {jobs} query job(s) in {requests} Bulk API requests (creation, polls, pages)",
        bulk.join(", ")
    );
}
