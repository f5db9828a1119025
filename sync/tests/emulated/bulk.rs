//! Large reads through Bulk API 2.0 query jobs: a backfill at the org's bulk threshold
//! through one job, its pages streamed into the mirror and checkpointed, resumed by a new
//! scheduler at the next page; a deleted job replaced and merged; a resync merged into the
//! rows it has; a backlog caught up through a `queryAll` job; the reconciliation and the
//! formula refresh through jobs of their own.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sfpg_control::objects::{BulkPurpose, Phase};
use sfpg_emulator::http::LoggedRequest;
use sfpg_sync::object::Task;
use sfpg_sync::{SyncSettings, TurnReport};

use crate::support::{Harness, all_live, drive_until, generated, quiet_settings};

/// Bulk reads with pages of `page_size` records and polls at most 50 ms apart.
fn bulk_settings(page_size: u32) -> SyncSettings {
    SyncSettings {
        bulk_page_size: Some(page_size),
        bulk_poll_cap: Duration::from_millis(50),
        ..quiet_settings()
    }
}

fn is_job_request(request: &LoggedRequest) -> bool {
    request.path.contains("/jobs/query")
}

fn job_creations(harness: &Harness) -> usize {
    harness
        .emulator
        .requests(0)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/query"))
        .count()
}

fn result_pages(harness: &Harness) -> Vec<LoggedRequest> {
    harness
        .emulator
        .requests(0)
        .into_iter()
        .filter(|r| r.path.ends_with("/results"))
        .collect()
}

fn tasks(reports: &[TurnReport]) -> Vec<Task> {
    reports
        .iter()
        .filter_map(|r| match r {
            TurnReport::Worked { task, .. } | TurnReport::Failed { task, .. } => Some(*task),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_object_at_the_threshold_backfills_through_one_query_job() {
    let harness = Harness::start(generated(3000), &["Account", "Contact"]).await;
    let accounts = harness.emulator.with_org(|org| org.record_count("Account"));
    let contacts = harness.emulator.with_org(|org| org.record_count("Contact"));
    assert!(
        accounts < contacts,
        "{accounts} accounts, {contacts} contacts"
    );
    // Contact reaches the threshold, Account does not.
    harness
        .set_org(&format!("bulk_threshold = {}", accounts + 1))
        .await;
    let mut sync = harness.org_sync(bulk_settings(500)).await;
    let reports = drive_until(&mut sync, Duration::from_secs(60), all_live).await;
    harness.assert_mirror_equals_org("Account").await;
    harness.assert_mirror_equals_org("Contact").await;

    assert_eq!(job_creations(&harness), 1);
    let pages = result_pages(&harness);
    assert_eq!(pages.len(), contacts.div_ceil(500));
    assert!(pages.iter().all(|p| p.status == Some(200)));
    // Each page after the first asks for the locator the one before handed out.
    assert!(
        pages[0]
            .query
            .as_deref()
            .is_some_and(|q| !q.contains("locator"))
    );
    assert!(
        pages[1..]
            .iter()
            .all(|p| p.query.as_deref().is_some_and(|q| q.contains("locator=")))
    );
    let state = &sync.object("Contact").unwrap().state;
    assert_eq!(state.phase, Phase::Live);
    assert_eq!(state.bulk, None);
    assert_eq!(state.backfill_done, contacts as i64);
    assert_eq!(state.backfill_total, Some(contacts as i64));
    assert_eq!(state.row_count, contacts as i64);
    assert!(state.newest_modstamp.is_some());
    assert_eq!(
        state.cursor_modstamp,
        state
            .backfill_snapshot
            .map(|s| s - chrono::Duration::minutes(5))
    );
    // Every request of the job went through the scheduler's turns, and is counted.
    let job_requests = harness
        .emulator
        .requests(0)
        .iter()
        .filter(|r| is_job_request(r))
        .count();
    let bulk_turns = tasks(&reports).iter().filter(|t| **t == Task::Bulk).count();
    assert_eq!(job_requests, bulk_turns);
    // Account, under the threshold, went through REST pages.
    assert_eq!(
        sync.object("Account").unwrap().state.backfill_done,
        accounts as i64
    );
}

#[tokio::test]
async fn a_new_scheduler_resumes_the_job_at_its_next_page() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    harness.set_org("bulk_threshold = 100").await;
    let contacts = harness.emulator.with_org(|org| org.record_count("Contact"));
    let mut sync = harness.org_sync(bulk_settings(300)).await;
    drive_until(&mut sync, Duration::from_secs(30), |s| {
        s.object("Contact").unwrap().state.backfill_done >= 600
    })
    .await;
    let saved = sync.object("Contact").unwrap().state.bulk.clone().unwrap();
    let locator = saved.locator.clone().expect("a page's locator");
    assert_eq!(saved.read, 600);
    drop(sync);

    // As after a crash: a new scheduler from what the control schema holds.
    let mut sync = harness.org_sync(bulk_settings(300)).await;
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    harness.assert_mirror_equals_org("Contact").await;
    assert_eq!(job_creations(&harness), 1, "the same job went on");
    let pages = result_pages(&harness);
    assert_eq!(pages.len(), contacts.div_ceil(300));
    let at_locator = pages
        .iter()
        .filter(|p| {
            p.query
                .as_deref()
                .is_some_and(|q| q.contains(&format!("locator={locator}")))
        })
        .count();
    assert_eq!(at_locator, 1, "the next page was read once");
    assert_eq!(harness.mirror_count("contact").await, contacts as i64);
}

#[tokio::test]
async fn a_job_deleted_mid_backfill_is_replaced_and_merged_without_duplicates() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    harness.set_org("bulk_threshold = 100").await;
    let contacts = harness.emulator.with_org(|org| org.record_count("Contact"));
    let mut sync = harness.org_sync(bulk_settings(400)).await;
    drive_until(&mut sync, Duration::from_secs(30), |s| {
        s.object("Contact").unwrap().state.backfill_done >= 800
    })
    .await;
    let job = sync.object("Contact").unwrap().state.bulk.clone().unwrap();
    harness
        .salesforce()
        .await
        .bulk()
        .delete_query_job(job.job_id.as_deref().unwrap())
        .await
        .unwrap();
    // And a record changes meanwhile: the new job reads it as it is now.
    let first = harness.org_records("Contact", &["Id".into()])[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    harness.update("Contact", &first, json!({"LastName": "Changed Meanwhile"}));

    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    assert_eq!(job_creations(&harness), 2);
    harness.assert_mirror_equals_org("Contact").await;
    assert_eq!(harness.mirror_count("contact").await, contacts as i64);
    assert_eq!(
        harness
            .mirror_value("contact", &first, "lastname")
            .await
            .as_deref(),
        Some("Changed Meanwhile")
    );
    let state = &sync.object("Contact").unwrap().state;
    assert_eq!(state.row_count, contacts as i64);
    assert_eq!(state.backfill_done, contacts as i64);
}

#[tokio::test]
async fn a_resync_of_a_large_object_merges_its_job_into_the_rows_it_has() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    let mut sync = harness.org_sync(bulk_settings(1000)).await;
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    assert_eq!(
        job_creations(&harness),
        0,
        "under the default threshold: REST"
    );
    let contacts = harness.org_records("Contact", &["Id".into()]);
    let changed = contacts[10]["Id"].as_str().unwrap().to_owned();
    harness.update("Contact", &changed, json!({"LastName": "Renamed"}));

    harness.set_org("bulk_threshold = 100").await;
    let client = harness.db.connect().await;
    sfpg_control::admin::resync_object(&client, "acme", "Contact")
        .await
        .unwrap();
    sync.reload().await.unwrap();
    drive_until(&mut sync, Duration::from_secs(30), |s| {
        s.object("Contact")
            .unwrap()
            .state
            .bulk
            .as_ref()
            .is_some_and(|b| b.purpose == BulkPurpose::Backfill)
    })
    .await;
    assert!(
        sync.object("Contact")
            .unwrap()
            .state
            .bulk
            .as_ref()
            .unwrap()
            .merge
    );
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    assert_eq!(job_creations(&harness), 1);
    harness.assert_mirror_equals_org("Contact").await;
    assert_eq!(harness.mirror_count("contact").await, contacts.len() as i64);
    assert_eq!(
        harness
            .mirror_value("contact", &changed, "lastname")
            .await
            .as_deref(),
        Some("Renamed")
    );
}

#[tokio::test]
async fn a_backlog_above_the_threshold_catches_up_through_a_query_all_job() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    let mut sync = harness.org_sync(bulk_settings(1000)).await;
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    let contacts = harness.org_records("Contact", &["Id".into()]);
    // An outage: 450 records change and one is deleted while nobody polls.
    for contact in &contacts[..450] {
        let id = contact["Id"].as_str().unwrap();
        harness.update("Contact", id, json!({"Title": "Changed during the outage"}));
    }
    let deleted = contacts[500]["Id"].as_str().unwrap().to_owned();
    harness.delete("Contact", &deleted);
    harness.set_org("bulk_threshold = 300").await;
    sync.reload().await.unwrap();

    let started = Utc::now();
    let reports = drive_until(&mut sync, Duration::from_secs(30), |s| {
        let state = &s.object("Contact").unwrap().state;
        // Caught up: no job, and the cursor at a stamp, not after a record.
        state.bulk.is_none()
            && state.cursor_id.is_none()
            && state
                .cursor_modstamp
                .is_some_and(|c| c > started - chrono::Duration::minutes(5))
    })
    .await;
    let tasks = tasks(&reports);
    assert!(tasks.contains(&Task::Backlog), "{tasks:?}");
    assert!(tasks.contains(&Task::Bulk), "{tasks:?}");
    assert_eq!(job_creations(&harness), 1);
    harness.assert_mirror_equals_org("Contact").await;
    assert_eq!(
        harness.mirror_value("contact", &deleted, "sfid").await,
        None
    );
    assert_eq!(
        harness
            .mirror_value("contact", contacts[449]["Id"].as_str().unwrap(), "title")
            .await
            .as_deref(),
        Some("Changed during the outage")
    );
}

/// Writes a mirror row for a record the org never had, as the sync would (the capture
/// triggers refuse anyone else), stamped long ago.
async fn insert_ghost(harness: &Harness, table: &str, id: &str) {
    let client = harness.db.connect().await;
    client
        .batch_execute(
            "SELECT set_config('sfpg.origin', 'sync:' || key, false) FROM sfpg.origin_key",
        )
        .await
        .unwrap();
    client
        .execute(
            &format!(
                "INSERT INTO acme.{table} (sfid, systemmodstamp) VALUES ($1, '2000-01-01T00:00:00Z')"
            ),
            &[&id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_reconciliation_of_a_large_object_reads_its_ids_through_a_job() {
    let harness = Harness::start(generated(3000), &["Contact"]).await;
    let mut sync = harness.org_sync(bulk_settings(700)).await;
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    let ids: Vec<String> = harness
        .org_records("Contact", &["Id".into()])
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    // Before the first Id, in the middle, after the last: the job's pages need not come in
    // Id order for any of them to go.
    let ghosts = [
        format!("{}0000000AAA", &ids[0][..8]),
        format!("{}zzzzzzzAAA", &ids[ids.len() / 2][..8]),
        "003zzzzzzzzzzzzAAA".to_owned(),
    ];
    for ghost in &ghosts {
        insert_ghost(&harness, "contact", ghost).await;
    }
    drop(sync);
    harness.set_org("bulk_threshold = 100").await;
    let settings = SyncSettings {
        reconcile_interval: Duration::from_secs(1),
        ..bulk_settings(700)
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut sync = harness.org_sync(settings).await;
    let started = Utc::now();
    let reports = drive_until(&mut sync, Duration::from_secs(30), |s| {
        s.object("Contact")
            .unwrap()
            .state
            .reconciled_at
            .is_some_and(|at| at >= started)
    })
    .await;
    for ghost in &ghosts {
        assert_eq!(
            harness.mirror_value("contact", ghost, "sfid").await,
            None,
            "{ghost} survived"
        );
    }
    harness.assert_mirror_equals_org("Contact").await;
    assert_eq!(
        sync.object("Contact").unwrap().state.row_count,
        ids.len() as i64
    );
    assert_eq!(job_creations(&harness), 1);
    assert_eq!(result_pages(&harness).len(), ids.len().div_ceil(700));
    let reconcile_turns = tasks(&reports)
        .iter()
        .filter(|t| **t == Task::Reconcile)
        .count();
    let job_requests = harness
        .emulator
        .requests(0)
        .iter()
        .filter(|r| is_job_request(r))
        .count();
    assert_eq!(reconcile_turns, job_requests, "one request a turn");
}

#[tokio::test]
async fn the_formula_refresh_of_a_large_object_reads_through_a_job() {
    let harness = Harness::start(generated(3000), &["Invoice__c"]).await;
    let mut sync = harness.org_sync(bulk_settings(500)).await;
    drive_until(&mut sync, Duration::from_secs(30), all_live).await;
    // A parent's new name changes its invoices' cross-object formula, not their stamps.
    let invoice = harness.org_records("Invoice__c", &["Id".into(), "Account__c".into()])[0].clone();
    let account = invoice["Account__c"].as_str().unwrap().to_owned();
    harness.update("Account", &account, json!({"Name": "Renamed Parent"}));
    drop(sync);

    harness.set_org("bulk_threshold = 100").await;
    let settings = SyncSettings {
        formula_interval: Some(Duration::from_secs(1)),
        ..bulk_settings(500)
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut sync = harness.org_sync(settings).await;
    let started = Utc::now();
    drive_until(&mut sync, Duration::from_secs(30), |s| {
        s.object("Invoice__c")
            .unwrap()
            .state
            .formulas_refreshed_at
            .is_some_and(|at| at >= started)
    })
    .await;
    assert_eq!(
        harness
            .mirror_value(
                "invoice__c",
                invoice["Id"].as_str().unwrap(),
                "account_name__c"
            )
            .await
            .as_deref(),
        Some("Renamed Parent")
    );
    harness.assert_mirror_equals_org("Invoice__c").await;
    assert_eq!(job_creations(&harness), 1);
}
