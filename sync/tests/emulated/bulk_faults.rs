//! A Bulk backfill under the emulator's faults: a job that ends `Failed` while processing,
//! a complete job failed or expired after some of its pages were written (each replaced by
//! a new job whose pages are merged, nothing duplicated), the 412 poll race, a download cut
//! mid-page (read again at its locator); and records changed while the job runs, which
//! reach the mirror through polling.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sfpg_emulator::http::{JobState, QueryJobFault};
use sfpg_sync::SyncSettings;

use crate::support::{Harness, all_live, drive_until, generated, quiet_settings};

fn bulk_settings(page_size: u32) -> SyncSettings {
    SyncSettings {
        bulk_page_size: Some(page_size),
        bulk_poll_cap: Duration::from_millis(50),
        ..quiet_settings()
    }
}

/// The query jobs created, in order, from the emulator's request log: how many.
fn job_creations(harness: &Harness) -> usize {
    harness
        .emulator
        .requests(0)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/query"))
        .count()
}

/// A Contact org at a bulk threshold of 100, backfilled until `records` are written; the
/// scheduler, and the job's Id.
async fn contacts_part_written(
    records: i64,
    page_size: u32,
) -> (Harness, sfpg_sync::OrgSync, String) {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    harness.set_org("bulk_threshold = 100").await;
    let mut sync = harness.org_sync(bulk_settings(page_size)).await;
    drive_until(&mut sync, Duration::from_secs(30), |s| {
        s.object("Contact").unwrap().state.backfill_done >= records
    })
    .await;
    let job = sync.object("Contact").unwrap().state.bulk.clone().unwrap();
    (harness, sync, job.job_id.unwrap())
}

async fn assert_each_record_once(harness: &Harness, sync: &sfpg_sync::OrgSync) {
    harness.assert_mirror_equals_org("Contact").await;
    let contacts = harness.emulator.with_org(|org| org.record_count("Contact")) as i64;
    assert_eq!(harness.mirror_count("contact").await, contacts);
    let state = &sync.object("Contact").unwrap().state;
    assert_eq!(state.row_count, contacts);
    assert_eq!(state.bulk, None);
}

#[tokio::test]
async fn a_job_that_fails_while_processing_is_replaced_by_one_that_delivers() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    harness.set_org("bulk_threshold = 100").await;
    harness.emulator.add_query_job_fault(QueryJobFault {
        object: Some("Contact".into()),
        fail_after_records: Some(500),
        error_message: Some("Retried more than 15 times".into()),
        ..QueryJobFault::default()
    });
    let mut sync = harness.org_sync(bulk_settings(400)).await;
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    assert_eq!(job_creations(&harness), 2);
    assert_each_record_once(&harness, &sync).await;
}

#[tokio::test]
async fn a_complete_job_failed_after_some_pages_is_replaced_and_merged() {
    let (harness, mut sync, job) = contacts_part_written(800, 400).await;
    assert!(harness.emulator.fail_query_job(&job, None));
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    assert_eq!(
        harness.emulator.query_job_state(&job),
        Some(JobState::Failed)
    );
    assert_eq!(job_creations(&harness), 2);
    assert_each_record_once(&harness, &sync).await;
}

#[tokio::test]
async fn an_expired_job_is_replaced_and_its_pages_merged() {
    let (harness, mut sync, job) = contacts_part_written(800, 400).await;
    assert!(harness.emulator.expire_query_job(&job));
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    assert_eq!(job_creations(&harness), 2);
    assert_each_record_once(&harness, &sync).await;
}

#[tokio::test]
async fn the_412_poll_race_is_polled_out() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    harness.set_org("bulk_threshold = 100").await;
    // More 412s than the client asks again for itself: the sync polls the job again.
    harness.emulator.add_query_job_fault(QueryJobFault {
        object: Some("Contact".into()),
        results_not_ready: 8,
        ..QueryJobFault::default()
    });
    let mut sync = harness.org_sync(bulk_settings(1000)).await;
    drive_until(&mut sync, Duration::from_secs(60), all_live).await;
    let not_ready = harness
        .emulator
        .requests(0)
        .iter()
        .filter(|r| r.path.ends_with("/results") && r.status == Some(412))
        .count();
    assert_eq!(not_ready, 8);
    assert_eq!(
        job_creations(&harness),
        1,
        "the job was waited for, not replaced"
    );
    assert_each_record_once(&harness, &sync).await;
}

#[tokio::test]
async fn a_download_cut_mid_page_is_read_again_at_its_locator() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    harness.set_org("bulk_threshold = 100").await;
    harness.emulator.add_query_job_fault(QueryJobFault {
        object: Some("Contact".into()),
        cut_download_after_records: Some(150),
        ..QueryJobFault::default()
    });
    let mut sync = harness.org_sync(bulk_settings(400)).await;
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    assert_eq!(job_creations(&harness), 1);
    assert_each_record_once(&harness, &sync).await;
    // The first page, cut after 150 records, was rolled back and read again whole.
    let first_pages = harness
        .emulator
        .requests(0)
        .iter()
        .filter(|r| r.path.ends_with("/results"))
        .filter(|r| r.query.as_deref().is_none_or(|q| !q.contains("locator=")))
        .count();
    assert_eq!(first_pages, 2);
}

#[tokio::test]
async fn changes_made_while_the_job_runs_reach_the_mirror_through_polling() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    harness.set_org("bulk_threshold = 100").await;
    harness.emulator.add_query_job_fault(QueryJobFault {
        object: Some("Contact".into()),
        processing_delay_ms: Some(1500),
        ..QueryJobFault::default()
    });
    let contacts = harness.org_records("Contact", &["Id".into()]);
    let changed = contacts[5]["Id"].as_str().unwrap().to_owned();
    let deleted = contacts[6]["Id"].as_str().unwrap().to_owned();
    let mut sync = harness.org_sync(bulk_settings(1000)).await;
    // Until the job reads its snapshot of the org.
    drive_until(&mut sync, Duration::from_secs(30), |s| {
        let job = s
            .object("Contact")
            .unwrap()
            .state
            .bulk
            .as_ref()
            .and_then(|b| b.job_id.clone());
        job.is_some_and(|job| harness.emulator.query_job_state(&job) == Some(JobState::InProgress))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another session changes, creates and deletes records meanwhile.
    let changed_at = Utc::now() - chrono::Duration::seconds(1);
    let created = change_create_delete(&harness, &changed, &deleted);

    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    // The job read the org as it was: none of it is in the backfill.
    assert_changes_mirrored(&harness, [&changed, &created, &deleted], false).await;
    // Polling from the snapshot (less the overlap) brings all three.
    drive_until(&mut sync, Duration::from_secs(30), |s| {
        let state = &s.object("Contact").unwrap().state;
        state.cursor_id.is_none() && state.newest_modstamp.is_some_and(|n| n >= changed_at)
    })
    .await;
    harness.assert_mirror_equals_org("Contact").await;
    assert_changes_mirrored(&harness, [&changed, &created, &deleted], true).await;
}

/// As another session: renames Contact `changed`, creates one (returned), deletes `deleted`.
fn change_create_delete(harness: &Harness, changed: &str, deleted: &str) -> String {
    harness.update(
        "Contact",
        changed,
        json!({"LastName": "Changed While Running"}),
    );
    let account = harness.org_records("Account", &["Id".into()])[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = harness.create(
        "Contact",
        json!({"LastName": "Created While Running", "AccountId": account}),
    );
    harness.delete("Contact", deleted);
    created
}

/// Whether the mirror shows [`change_create_delete`]'s three changes (`mirrored`) or
/// none of them.
async fn assert_changes_mirrored(
    harness: &Harness,
    [changed, created, deleted]: [&str; 3],
    mirrored: bool,
) {
    let lastname = harness.mirror_value("contact", changed, "lastname").await;
    assert_eq!(
        lastname.as_deref() == Some("Changed While Running"),
        mirrored,
        "the change: {lastname:?}"
    );
    let created_row = harness.mirror_value("contact", created, "sfid").await;
    assert_eq!(created_row.is_some(), mirrored, "the created row");
    let deleted_row = harness.mirror_value("contact", deleted, "sfid").await;
    assert_eq!(deleted_row.is_none(), mirrored, "the deleted row");
}
