//! The backfill: every record, page by page, each page with its checkpoint; a restart
//! resumes from the checkpoint; the next page is read ahead only when the rate limit has
//! room; objects that cannot be followed are refused.

use sfpg_control::objects::Phase;

use crate::support::{
    Harness, all_live, generated, quiet_settings, run_turns, soql_of, turn_until,
};

#[tokio::test]
async fn backfills_every_record_of_every_object_with_every_type() {
    let objects = ["Account", "Contact", "Invoice__c", "User"];
    let harness = Harness::start(generated(1200), &objects).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    turn_until(&mut sync, 500, all_live).await;

    for object in objects {
        harness.assert_mirror_equals_org(object).await;
        let in_org = harness.emulator.with_org(|org| org.record_count(object)) as i64;
        let state = &sync.object(object).unwrap().state;
        assert_eq!(state.phase, Phase::Live);
        assert_eq!(state.backfill_total, Some(in_org), "{object}");
        assert_eq!(state.backfill_done, in_org, "{object}");
        assert_eq!(state.row_count, in_org, "{object}");
        assert!(state.cursor_modstamp.is_some() && state.backfill_snapshot.is_some());
    }

    // Every backfill query pages by Id, never by OFFSET or locator.
    let pages: Vec<String> = harness
        .emulator
        .requests(0)
        .iter()
        .filter_map(soql_of)
        .filter(|q| q.contains("FROM Account") && !q.contains("COUNT()"))
        .collect();
    let backfill: Vec<&String> = pages
        .iter()
        .filter(|q| q.ends_with("ORDER BY Id LIMIT 200"))
        .collect();
    assert!(
        backfill[0].ends_with("FROM Account ORDER BY Id LIMIT 200"),
        "{}",
        backfill[0]
    );
    assert!(backfill[1..].iter().all(|q| q.contains("WHERE Id > '001")));
    // One page per 200 records, and one more that comes back short.
    let accounts = harness.emulator.with_org(|org| org.record_count("Account"));
    assert_eq!(backfill.len(), accounts / 200 + 1);
    assert!(
        harness
            .emulator
            .requests(0)
            .iter()
            .all(|r| !r.path.contains("/query/")),
        "a locator was followed"
    );
}

/// The Id-ordered page queries in the request log, in order.
fn id_pages(harness: &Harness) -> Vec<String> {
    harness
        .emulator
        .requests(0)
        .iter()
        .filter_map(soql_of)
        .filter(|q| q.contains("ORDER BY Id"))
        .collect()
}

#[tokio::test]
async fn the_next_page_is_read_ahead_only_when_the_rate_limit_has_room() {
    // Without a rate limit to speak of: every page after the first is read while the one
    // before it is written, each exactly once.
    let harness = Harness::start(generated(3000), &["Account"]).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    let mut read_ahead = 0;
    for _ in 0..100 {
        sync.turn().await.unwrap();
        let object = sync.object("Account").unwrap();
        read_ahead += usize::from(object.read_ahead.is_some());
        if object.state.phase == Phase::Live {
            break;
        }
    }
    harness.assert_mirror_equals_org("Account").await;
    let pages = id_pages(&harness);
    let mut distinct = pages.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), pages.len(), "a page was asked for twice");
    assert_eq!(read_ahead, pages.len() - 1, "{pages:#?}");
    let state = &sync.object("Account").unwrap().state;
    let counted = harness
        .emulator
        .requests(0)
        .iter()
        .filter(|r| r.counted)
        .count();
    assert_eq!(
        state.requests, counted as i64,
        "every request is counted once"
    );

    // At 20 requests a second the slot after a request is never free at once: one request
    // per turn, as the round-robin promises.
    let harness = Harness::start(generated(1000), &["Account"]).await;
    harness
        .set_org("rate_requests = 20, rate_period_ms = 1000")
        .await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    for _ in 0..100 {
        sync.turn().await.unwrap();
        let object = sync.object("Account").unwrap();
        assert!(object.read_ahead.is_none());
        if object.state.phase == Phase::Live {
            break;
        }
    }
    harness.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn a_restarted_backfill_resumes_at_its_checkpoint() {
    let harness = Harness::start(generated(6000), &["Account"]).await;
    let mut first = harness.org_sync(quiet_settings()).await;
    turn_until(&mut first, 20, |s| {
        s.object("Account").unwrap().state.backfill_done >= 400
    })
    .await;
    let checkpoint = first
        .object("Account")
        .unwrap()
        .state
        .backfill_last_id
        .clone()
        .unwrap();
    let done = first.object("Account").unwrap().state.backfill_done;
    drop(first);
    let seen = harness.emulator.requests(0).last().unwrap().seq;

    let mut second = harness.org_sync(quiet_settings()).await;
    turn_until(&mut second, 100, all_live).await;
    harness.assert_mirror_equals_org("Account").await;

    let after: Vec<_> = harness.emulator.requests(seen);
    // No describe, no count: the stored plan and total carry over; the first page asked for
    // is the one after the checkpoint.
    assert!(
        after.iter().all(|r| !r.path.ends_with("/describe")),
        "described again"
    );
    let first_query = after.iter().find_map(soql_of).unwrap();
    assert!(
        first_query.contains(&format!("WHERE Id > '{checkpoint}'")),
        "{first_query}"
    );
    let state = &second.object("Account").unwrap().state;
    let in_org = harness.emulator.with_org(|org| org.record_count("Account")) as i64;
    assert_eq!(state.backfill_done, in_org);
    assert!(done < in_org);
}

#[tokio::test]
async fn objects_that_cannot_be_followed_are_refused_with_a_clear_reason() {
    let harness = Harness::start(generated(0), &["Secret__c", "Account"]).await;
    harness
        .emulator
        .define_object(
            r#"{"name": "Secret__c", "label": "Secret", "labelPlural": "Secrets", "keyPrefix": "a0S",
                "custom": true, "replicateable": false,
                "fields": [{"name": "Name", "label": "Name", "type": "string", "length": 80}]}"#,
        )
        .unwrap();
    let mut sync = harness.org_sync(quiet_settings()).await;
    turn_until(&mut sync, 20, |s| {
        s.object("Account").unwrap().state.phase == Phase::Live
    })
    .await;

    let secret = &sync.object("Secret__c").unwrap().state;
    let reason = secret.paused_reason.as_deref().unwrap_or_default();
    assert!(reason.contains("Secret__c cannot be mirrored"), "{reason}");
    assert!(reason.contains("not replicateable"), "{reason}");
    let client = harness.db.connect().await;
    let table: Option<String> = client
        .query_one("SELECT to_regclass('acme.secret__c')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(table, None, "a table was created for a refused object");
    // The refusal is not retried turn after turn.
    let requests = secret.requests;
    run_turns(&mut sync, 10).await;
    assert_eq!(sync.object("Secret__c").unwrap().state.requests, requests);
}
