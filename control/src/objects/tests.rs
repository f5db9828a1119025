//! `sfpg.objects` against a real PostgreSQL.

use crate::{MasterKey, NewOrg, admin, orgs};
use sfpg_testkit::TestDatabase;

use super::*;

#[tokio::test]
async fn progress_of_a_turn_in_flight_does_not_undo_a_resync() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    let org = NewOrg::client_credentials(
        "acme",
        "https://login.salesforce.com",
        "id",
        "secret",
        &["Account"],
    );
    orgs::insert(&mut client, &org, &MasterKey::from_bytes([7; 32]))
        .await
        .unwrap();
    // A scheduler has the object mid-backfill in memory ...
    let mut in_flight = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    in_flight.phase = Phase::Backfilling;
    in_flight.backfill_done = 400;
    in_flight.save(&client).await.unwrap();
    // ... when the operator starts it over, before the turn saves its progress.
    admin::resync_object(&client, "acme", "Account")
        .await
        .unwrap();
    in_flight.backfill_done = 600;
    in_flight.save(&client).await.unwrap();

    let stored = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.phase, Phase::Describing);
    assert_eq!(stored.backfill_done, 0);
    assert_eq!(stored.generation, in_flight.generation + 1);
    // From the fresh row on, saves go through again.
    let mut fresh = stored;
    fresh.backfill_done = 200;
    fresh.save(&client).await.unwrap();
    let stored = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.backfill_done, 200);
}

/// A query job under way is saved with the object's progress and read back whole; a
/// resync forgets it.
#[tokio::test]
async fn a_bulk_read_is_saved_with_the_progress_and_forgotten_by_a_resync() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    let org = NewOrg::client_credentials(
        "acme",
        "https://login.salesforce.com",
        "id",
        "secret",
        &["Account"],
    );
    orgs::insert(&mut client, &org, &MasterKey::from_bytes([7; 32]))
        .await
        .unwrap();
    let mut state = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.bulk, None);
    let snapshot = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    state.phase = Phase::Backfilling;
    state.bulk = Some(BulkRead {
        job_id: Some("7505g00000AbCdEAAV".to_owned()),
        locator: Some("MTAwMDA".to_owned()),
        processed: Some(120_000),
        read: 100_000,
        ..BulkRead::new(BulkPurpose::Backfill, snapshot, true)
    });
    state.save(&client).await.unwrap();
    let stored = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.bulk, state.bulk);

    state.bulk = Some(BulkRead::new(BulkPurpose::Changes, snapshot, false));
    state.save(&client).await.unwrap();
    let stored = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.bulk, state.bulk);

    admin::resync_object(&client, "acme", "Account")
        .await
        .unwrap();
    let stored = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.bulk, None);
}

/// A poll that caught up is saved as the object's freshness, with Salesforce's code of an
/// error beside its text; a resync forgets both (the object is not caught up until its
/// backfill and a poll after it are).
#[tokio::test]
async fn freshness_is_saved_with_the_progress_and_forgotten_by_a_resync() {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    let org = NewOrg::client_credentials(
        "acme",
        "https://login.salesforce.com",
        "id",
        "secret",
        &["Account"],
    );
    orgs::insert(&mut client, &org, &MasterKey::from_bytes([7; 32]))
        .await
        .unwrap();
    let mut state = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    let polled = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    state.phase = Phase::Live;
    state.caught_up_at = Some(polled);
    state.last_error = Some("GET /query answered 503".into());
    state.last_error_code = Some("SERVER_UNAVAILABLE".into());
    state.save(&client).await.unwrap();
    crate::streams::mark_current(&client, "acme", &["Account".to_owned()], polled)
        .await
        .unwrap();
    let stored = ObjectState::load(&client, "acme", "Account")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.caught_up_at, Some(polled));
    assert_eq!(
        stored.last_error_code.as_deref(),
        Some("SERVER_UNAVAILABLE")
    );

    admin::resync_object(&client, "acme", "Account")
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT caught_up_at, streamed_through, last_error_code FROM sfpg.objects
              WHERE object_name = 'Account'",
            &[],
        )
        .await
        .unwrap();
    let forgotten: (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(forgotten, (None, None, None));
}
