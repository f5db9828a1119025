//! Tests of workers and leases against PostgreSQL: taking, renewing, releasing, and the
//! fence that refuses a write once the lease was taken over.

use super::*;
use sfpg_testkit::TestDatabase;

const TTL: Duration = Duration::from_secs(30);

async fn migrated(orgs: &[&str]) -> (TestDatabase, tokio_postgres::Client) {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    for org in orgs {
        client
            .execute(
                "INSERT INTO sfpg.orgs (name, schema_name, auth_flow, login_url, client_id, sealed_credentials)
                 VALUES ($1, $1, 'password', 'https://login.example', 'client', '\\x00')",
                &[org],
            )
            .await
            .unwrap();
    }
    (db, client)
}

fn names(orgs: &[&str]) -> Vec<String> {
    orgs.iter().map(|o| (*o).to_owned()).collect()
}

#[tokio::test]
async fn a_lease_is_taken_once_with_a_new_epoch_each_time() {
    let (_db, client) = migrated(&["alpha", "beta"]).await;
    register(&client, "w1:1", TTL, 10).await.unwrap();
    register(&client, "w2:2", TTL, 10).await.unwrap();
    let first = take(&client, "w1:1", &names(&["alpha", "beta"]), TTL)
        .await
        .unwrap();
    assert_eq!(
        first,
        [
            Held {
                org: "alpha".into(),
                epoch: 1
            },
            Held {
                org: "beta".into(),
                epoch: 1
            }
        ]
    );
    // Held and not expired: the other worker gets nothing.
    assert!(
        take(&client, "w2:2", &names(&["alpha"]), TTL)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(release(&client, "w1:1", &first[0]).await.unwrap());
    let second = take(&client, "w2:2", &names(&["alpha"]), TTL)
        .await
        .unwrap();
    assert_eq!(second[0].epoch, 2);
    // The old holder's release of the old epoch is a no-op.
    assert!(!release(&client, "w1:1", &first[0]).await.unwrap());
    let owners: Vec<(String, Option<String>)> = client
        .query(
            "SELECT DISTINCT org_name, worker FROM sfpg.status ORDER BY org_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        owners,
        [
            ("alpha".into(), Some("w2:2".into())),
            ("beta".into(), Some("w1:1".into()))
        ]
    );
    let view = view(&client).await.unwrap();
    assert_eq!(view.workers.len(), 2);
    assert_eq!(view.leases[0].owner.as_deref(), Some("w2:2"));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced() {
    let (_db, mut client) = migrated(&["alpha"]).await;
    let short = Duration::from_millis(300);
    let old = take(&client, "w1:1", &names(&["alpha"]), short)
        .await
        .unwrap();
    let fence = Fence::new("alpha", "w1:1", old[0].epoch);
    let transaction = fence.begin(&mut client, None).await.unwrap();
    transaction.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired: the heartbeat of the old holder would still renew it if nobody took it,
    // but another worker takes it first.
    let new = take(&client, "w2:2", &names(&["alpha"]), TTL)
        .await
        .unwrap();
    assert_eq!(new[0].epoch, old[0].epoch + 1);
    let refused = fence
        .begin(&mut client, None)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&refused, ControlError::Fenced { org, epoch: 1, now } if org == "alpha" && now.contains("w2:2")),
        "{refused}"
    );
    // The old holder's heartbeat no longer renews it.
    assert!(
        heartbeat(&client, "w1:1", TTL, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let renewed = heartbeat(&client, "w2:2", TTL, 10).await.unwrap();
    assert_eq!(renewed, new);
}

#[tokio::test]
async fn a_lease_being_written_under_is_not_taken_until_the_write_commits() {
    let (db, mut client) = migrated(&["alpha"]).await;
    let short = Duration::from_millis(200);
    let held = take(&client, "w1:1", &names(&["alpha"]), short)
        .await
        .unwrap();
    let fence = Fence::new("alpha", "w1:1", held[0].epoch);
    let transaction = fence.begin(&mut client, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = db.connect().await;
    // Expired, but locked by the write in flight: skipped, not waited for.
    assert!(
        take(&other, "w2:2", &names(&["alpha"]), TTL)
            .await
            .unwrap()
            .is_empty()
    );
    // The holder's own renewal does not wait for its write either.
    let renewed =
        tokio::time::timeout(Duration::from_secs(2), heartbeat(&other, "w1:1", short, 10))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(renewed, held);
    transaction.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        take(&other, "w2:2", &names(&["alpha"]), TTL)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_worker_that_leaves_frees_its_leases_and_its_row() {
    let (_db, client) = migrated(&["alpha", "beta"]).await;
    register(&client, "w1:1", TTL, 10).await.unwrap();
    take(&client, "w1:1", &names(&["alpha", "beta"]), TTL)
        .await
        .unwrap();
    leave(&client, "w1:1").await.unwrap();
    let view = view(&client).await.unwrap();
    assert!(view.workers.is_empty());
    assert!(view.leases.iter().all(|l| l.owner.is_none()));
    let taken = take(&client, "w2:2", &names(&["alpha", "beta"]), TTL)
        .await
        .unwrap();
    assert!(taken.iter().all(|h| h.epoch == 2), "{taken:?}");
}
