//! The subscription's rules without a server or a database.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sfpg_salesforce::streaming::{ReplayFrom, ReplayId};

use super::*;
use crate::stream::change::{Change, ChangeKind};

fn change(replay_id: i64, key: &str) -> Change {
    Change {
        replay_id,
        entity: "Account".into(),
        record_ids: vec![format!("001{replay_id:015}")],
        kind: ChangeKind::Update,
        transaction_key: key.into(),
        sequence_number: replay_id,
        commit_timestamp: 0,
        echo: false,
        fields: Default::default(),
        name_parts_changed: false,
    }
}

fn at(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + second, 0).unwrap()
}

fn ids(transactions: &[Transaction]) -> Vec<Vec<i64>> {
    transactions
        .iter()
        .map(|t| t.changes.iter().map(|c| c.replay_id).collect())
        .collect()
}

fn applied(turn: AfterTurn) -> Vec<Vec<i64>> {
    match turn {
        AfterTurn::Apply(transactions) => ids(&transactions),
        other => panic!("expected transactions to apply, got {other:?}"),
    }
}

#[test]
fn a_transaction_is_applied_once_complete() {
    let mut received = Received::new(None);
    let subscribed = received.connected(ReplayFrom::Tip, at(0));
    assert_eq!(
        subscribed,
        Subscribed {
            first: true,
            connected: true
        }
    );
    received.event(change(1, "a"));
    received.event(change(2, "a"));
    // More is waiting: transaction `a` may go on.
    assert_eq!(
        applied(received.after_turn(false, at(1))),
        Vec::<Vec<i64>>::new()
    );
    received.event(change(3, "b"));
    assert_eq!(applied(received.after_turn(false, at(1))), [vec![1, 2]]);
    // Nothing more waiting: `b` is complete.
    assert_eq!(applied(received.after_turn(true, at(1))), [vec![3]]);
    assert_eq!(received.held_events(), 0);
}

#[test]
fn a_catch_up_holds_everything_until_polls_after_the_subscription_caught_up() {
    let catch_up = CatchUp {
        reason: "replay id expired".into(),
        since: at(0),
    };
    let mut received = Received::new(Some(catch_up));
    // Not subscribed yet: even polls that caught up do not end it.
    assert!(received.end_catch_up(|_| true).is_none());
    let subscribed = received.connected(ReplayFrom::Tip, at(5));
    assert_eq!(
        subscribed,
        Subscribed {
            first: true,
            connected: false
        }
    );
    assert_eq!(received.catching_up().unwrap().since, at(5));
    received.event(change(1, "a"));
    received.event(change(2, "b"));
    assert_eq!(received.after_turn(true, at(6)), AfterTurn::Hold);
    // Polls that caught up since before the subscription took hold do not count.
    assert!(received.end_catch_up(|since| since <= at(4)).is_none());
    let held = received.end_catch_up(|since| since == at(5)).unwrap();
    assert_eq!(ids(&held), [vec![1], vec![2]]);
    assert!(received.catching_up().is_none());
    assert_eq!(
        applied(received.after_turn(true, at(7))),
        Vec::<Vec<i64>>::new()
    );
}

#[test]
fn subscribing_from_the_tip_again_moves_the_catch_up_on() {
    let catch_up = CatchUp {
        reason: "checkpoint too old".into(),
        since: at(0),
    };
    let mut received = Received::new(Some(catch_up));
    received.connected(ReplayFrom::Tip, at(1));
    // Resumed after an id: the polls started after the first subscription still count.
    let again = received.connected(ReplayFrom::After(ReplayId(7)), at(2));
    assert!(!again.first);
    assert_eq!(received.catching_up().unwrap().since, at(1));
    // From the tip: what happened meanwhile is for polls started from now.
    received.connected(ReplayFrom::Tip, at(3));
    assert_eq!(received.catching_up().unwrap().since, at(3));
}

#[test]
fn a_subscription_resumed_after_an_id_forgets_what_it_delivers_again() {
    let catch_up = CatchUp {
        reason: "replay id expired".into(),
        since: at(0),
    };
    let mut received = Received::new(Some(catch_up));
    received.connected(ReplayFrom::Tip, at(0));
    for (id, key) in [(1, "a"), (2, "a"), (3, "b"), (4, "c")] {
        received.event(change(id, key));
    }
    assert_eq!(received.after_turn(false, at(1)), AfterTurn::Hold);
    received.connected(ReplayFrom::After(ReplayId(2)), at(2));
    let held = received.end_catch_up(|_| true).unwrap();
    assert_eq!(ids(&held), [vec![1, 2]]);
}

#[test]
fn too_much_held_while_catching_up_starts_the_catch_up_over() {
    let catch_up = CatchUp {
        reason: "replay id expired".into(),
        since: at(0),
    };
    let mut received = Received::new(Some(catch_up));
    received.connected(ReplayFrom::Tip, at(0));
    for id in 0..=i64::try_from(MAX_HELD_EVENTS).unwrap() + 1 {
        received.event(change(id, &format!("t{id}")));
    }
    assert_eq!(
        received.after_turn(false, at(0) + Duration::seconds(9)),
        AfterTurn::StartedOver
    );
    assert_eq!(received.held_events(), 0);
    assert_eq!(received.catching_up().unwrap().since, at(9));
}
