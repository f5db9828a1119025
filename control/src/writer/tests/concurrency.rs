//! The version guard under concurrent writers: two writers race different versions of the
//! same records, some already mirrored and some new, and the newest version of each record
//! is what stays, whichever writer commits first, with either strategy, whether the writers
//! wait for each other's rows or leave them out and come back for them.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::*;

/// Records per race: half mirrored beforehand (the merge's updates), half new (its `COPY`,
/// which collides on the unique index and falls back to the upsert).
const RECORDS: usize = 60;

fn id(i: usize) -> String {
    format!("001{i:012}AAA")
}

/// Writer `who`'s version of record `i`: "x" is the newer of the two for odd records, "y"
/// for even ones; both are newer than what was mirrored before.
fn version(who: &str, i: usize) -> Record {
    let newer = (who == "x") == (i % 2 == 1);
    let stamp = if newer {
        "2024-03-01T12:00:20.000+0000"
    } else {
        "2024-03-01T12:00:10.000+0000"
    };
    record(&id(i), stamp, &format!("{who} {i}"))
}

/// Writes `who`'s versions: holds its transaction open for `hold` after writing, so that the
/// other writer runs into its rows, and with [`OnLocked::Skip`] writes again what it left out
/// until nothing is.
async fn race(
    mut client: Client,
    who: &'static str,
    strategy: WriteStrategy,
    on_locked: OnLocked,
    start: Arc<Barrier>,
    delay: Duration,
    hold: Duration,
) {
    let plan = plan();
    let mut pending: Vec<Record> = (0..RECORDS).map(|i| version(who, i)).collect();
    start.wait().await;
    tokio::time::sleep(delay).await;
    let mut hold = hold;
    while !pending.is_empty() {
        let rows = Rows::from_records("Account", plan.fields.iter().collect(), &pending).unwrap();
        let transaction = begin(&mut client, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        let applied = apply(
            &transaction,
            &plan,
            &[Write::Upsert(rows)],
            strategy,
            on_locked,
        )
        .await
        .unwrap();
        tokio::time::sleep(std::mem::take(&mut hold)).await;
        transaction.commit().await.unwrap();
        pending.retain(|r| {
            applied
                .locked
                .iter()
                .any(|id| Some(id.as_str()) == r["Id"].as_str())
        });
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn newest_wins(strategy: WriteStrategy, on_locked: OnLocked, first: &'static str) {
    let db = TestDatabase::create().await;
    let mut client = mirror_table(&db).await;
    let before: Vec<Record> = (0..RECORDS / 2)
        .map(|i| record(&id(i), "2024-03-01T12:00:00.000+0000", "before"))
        .collect();
    write(&mut client, &before, strategy).await;
    let second = if first == "x" { "y" } else { "x" };
    let start = Arc::new(Barrier::new(2));
    // The first writes and holds its rows; the second comes while they are held.
    let leader = tokio::spawn(race(
        db.connect().await,
        first,
        strategy,
        on_locked,
        Arc::clone(&start),
        Duration::ZERO,
        Duration::from_millis(300),
    ));
    let follower = tokio::spawn(race(
        db.connect().await,
        second,
        strategy,
        on_locked,
        start,
        Duration::from_millis(100),
        Duration::ZERO,
    ));
    leader.await.unwrap();
    follower.await.unwrap();
    let names: Vec<(String, String)> = client
        .query("SELECT sfid, name FROM acme.account ORDER BY sfid", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = (0..RECORDS)
        .map(|i| {
            let newest = if i % 2 == 1 { "x" } else { "y" };
            (id(i), format!("{newest} {i}"))
        })
        .collect();
    assert_eq!(
        names, expected,
        "{strategy:?}, {on_locked:?}, {first} first: an older version won"
    );
}

#[tokio::test]
async fn the_newest_version_wins_a_race_of_two_writers_whatever_the_order() {
    for strategy in [WriteStrategy::CopyMerge, WriteStrategy::Unnest] {
        for on_locked in [OnLocked::Wait, OnLocked::Skip] {
            for first in ["x", "y"] {
                newest_wins(strategy, on_locked, first).await;
            }
        }
    }
}
