//! The CometD streaming client over real HTTP against the scripted CometD server
//! (`cometd_server.rs`): what it sends, and how it survives each documented fault without
//! losing or doubling an event.

use std::time::Duration;

use sfpg_salesforce::streaming::{
    Backoff, ChangeEvent, ChangeType, CometD, CometDOptions, EventTransport, ReplayFrom, ReplayId,
    StreamItem, Subscription,
};
use sfpg_salesforce::{Client, Rate, RateLimiter};

use crate::cometd_server::CHANNEL;
use crate::scripted::{Scripted, password};

const PATIENCE: Duration = Duration::from_secs(10);

fn options() -> CometDOptions {
    CometDOptions {
        stall_timeout: Duration::from_secs(5),
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
        disconnect_timeout: Duration::from_secs(2),
    }
}

fn transport(server: &Scripted) -> CometD {
    CometD::with_options(server.client(), options())
}

/// The next item that is not `Idle`.
async fn next_news(subscription: &mut Box<dyn Subscription>) -> StreamItem {
    loop {
        let Ok(item) = tokio::time::timeout(PATIENCE, subscription.next()).await else {
            panic!("no item within 10 s");
        };
        let item = item.unwrap();
        if item != StreamItem::Idle {
            return item;
        }
    }
}

async fn next_event(subscription: &mut Box<dyn Subscription>) -> ChangeEvent {
    match next_news(subscription).await {
        StreamItem::Event(event) => *event,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn replay_ids(events: &[ChangeEvent]) -> Vec<i64> {
    events.iter().map(|event| event.replay_id.0).collect()
}

/// The meta channels the server saw, with their client ids.
fn metas(server: &Scripted) -> Vec<(String, Option<String>)> {
    server
        .cometd()
        .seen()
        .into_iter()
        .filter(|seen| seen.channel != "/meta/connect")
        .map(|seen| (seen.channel, seen.client_id))
        .collect()
}

#[tokio::test]
async fn events_arrive_typed_over_a_handshake_with_the_replay_ext_and_the_cookie() {
    let server = Scripted::start().await;
    let mut subscription = transport(&server).subscribe(CHANNEL, ReplayFrom::Tip);
    assert_eq!(subscription.channel(), CHANNEL);
    assert_eq!(
        next_news(&mut subscription).await,
        StreamItem::Connected {
            from: ReplayFrom::Tip
        }
    );
    let first = server.cometd().publish("Acme");
    let second = server.cometd().publish("Acme 2");
    let events = [
        next_event(&mut subscription).await,
        next_event(&mut subscription).await,
    ];
    assert_eq!(replay_ids(&events), [first, second]);
    let event = &events[0];
    assert_eq!(event.channel, CHANNEL);
    assert_eq!(event.header.change_type, ChangeType::Update);
    assert_eq!(event.header.entity_name, "Account");
    assert_eq!(event.fields["Name"], "Acme");
    assert_eq!(
        event.nulled_fields(),
        ["Phone"],
        "the explicit null is kept"
    );

    let requests = server.requests();
    let handshake = requests[0].json();
    assert_eq!(requests[0].path, "/cometd/62.0");
    assert_eq!(handshake[0]["channel"], "/meta/handshake");
    assert_eq!(handshake[0]["ext"]["replay"], true);
    assert!(
        requests[0]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ")
    );
    let seen = server.cometd().seen();
    assert_eq!(seen[1].channel, "/meta/subscribe");
    assert_eq!(seen[1].replay, Some(-1));
    let connects: Vec<_> = seen
        .iter()
        .filter(|s| s.channel == "/meta/connect")
        .collect();
    assert!(!connects.is_empty());
    for connect in connects {
        assert_eq!(connect.cookie.as_deref(), Some("BAYEUX_BROWSER=browser-1"));
    }
    subscription.close().await;
    assert_eq!(
        metas(&server).last().unwrap(),
        &(
            "/meta/disconnect".to_owned(),
            Some("scripted-client-1".to_owned())
        )
    );
    let error = subscription.next().await.unwrap_err();
    assert!(error.to_string().contains("closed"), "{error}");
}

#[tokio::test]
async fn connects_skip_the_rate_limiter_and_handshakes_wait_for_it() {
    let server = Scripted::start().await;
    let limiter = RateLimiter::new(Rate::new(1, Duration::from_secs(2)).unwrap());
    let client = Client::new(server.config(), password(), limiter).unwrap();
    let mut subscription =
        CometD::with_options(client, options()).subscribe(CHANNEL, ReplayFrom::Tip);
    let started = tokio::time::Instant::now();
    next_news(&mut subscription).await;
    let subscribed = started.elapsed();
    assert!(
        subscribed >= Duration::from_millis(1900),
        "the subscribe waited for the limiter after the handshake: {subscribed:?}"
    );
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < until {
        let _ = tokio::time::timeout_at(until, subscription.next()).await;
    }
    let connects = server
        .cometd()
        .seen()
        .iter()
        .filter(|s| s.channel == "/meta/connect")
        .count();
    assert!(
        connects >= 3,
        "{connects} connects in 1.5 s under a limiter of one request per 2 s"
    );
}

#[tokio::test]
async fn a_long_poll_outlasts_the_request_timeout() {
    let server = Scripted::start().await;
    server
        .cometd()
        .hold_connects_for(Duration::from_millis(1200));
    let config = server
        .config()
        .with_request_timeout(Duration::from_millis(500));
    let mut subscription = CometD::with_options(server.client_with(config, password()), options())
        .subscribe(CHANNEL, ReplayFrom::Tip);
    assert!(matches!(
        next_news(&mut subscription).await,
        StreamItem::Connected { .. }
    ));
    for _ in 0..2 {
        let item = tokio::time::timeout(PATIENCE, subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item, StreamItem::Idle, "a held connect was cut");
    }
    let handshakes = metas(&server)
        .iter()
        .filter(|m| m.0 == "/meta/handshake")
        .count();
    assert_eq!(handshakes, 1);
}

#[tokio::test]
async fn subscriptions_start_after_an_id_or_at_the_oldest_retained() {
    let server = Scripted::start().await;
    let ids: Vec<i64> = ["a", "b", "c"]
        .iter()
        .map(|name| server.cometd().publish(name))
        .collect();
    let transport = transport(&server);
    let mut after = transport.subscribe(CHANNEL, ReplayFrom::After(ReplayId(ids[0])));
    assert_eq!(
        next_news(&mut after).await,
        StreamItem::Connected {
            from: ReplayFrom::After(ReplayId(ids[0]))
        }
    );
    let events = [next_event(&mut after).await, next_event(&mut after).await];
    assert_eq!(replay_ids(&events), ids[1..]);
    after.close().await;

    let mut retained = transport.subscribe(CHANNEL, ReplayFrom::Retained);
    next_news(&mut retained).await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(next_event(&mut retained).await);
    }
    assert_eq!(replay_ids(&events), ids);
    let subscribes: Vec<_> = server
        .cometd()
        .seen()
        .into_iter()
        .filter(|s| s.channel == "/meta/subscribe")
        .map(|s| s.replay)
        .collect();
    assert_eq!(subscribes, [Some(ids[0]), Some(-2)]);
}

#[tokio::test]
async fn an_unknown_client_re_handshakes_and_resumes_after_the_last_applied_id() {
    let server = Scripted::start().await;
    let mut subscription = transport(&server).subscribe(CHANNEL, ReplayFrom::Tip);
    next_news(&mut subscription).await;
    let first = server.cometd().publish("one");
    let second = server.cometd().publish("two");
    next_event(&mut subscription).await;
    next_event(&mut subscription).await;
    // Only the first was applied (committed) by the caller.
    subscription.resume_after(ReplayId(first));
    server.cometd().forget_clients();
    let third = server.cometd().publish("three");
    match next_news(&mut subscription).await {
        StreamItem::Reconnecting { reason, .. } => {
            assert!(reason.contains("403::Unknown client"), "{reason}");
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    assert_eq!(
        next_news(&mut subscription).await,
        StreamItem::Connected {
            from: ReplayFrom::After(ReplayId(first))
        }
    );
    let events = [
        next_event(&mut subscription).await,
        next_event(&mut subscription).await,
    ];
    assert_eq!(replay_ids(&events), [second, third]);
    let seen = server.cometd().seen();
    let subscribes: Vec<_> = seen
        .iter()
        .filter(|s| s.channel == "/meta/subscribe")
        .map(|s| (s.client_id.clone().unwrap(), s.replay))
        .collect();
    assert_eq!(
        subscribes,
        [
            ("scripted-client-1".to_owned(), Some(-1)),
            ("scripted-client-2".to_owned(), Some(first))
        ]
    );
    let last_connect = seen.iter().rfind(|s| s.channel == "/meta/connect").unwrap();
    assert_eq!(
        last_connect.cookie.as_deref(),
        Some("BAYEUX_BROWSER=browser-2")
    );
}

#[tokio::test]
async fn a_401_logs_in_again_once_and_a_second_one_ends_the_subscription() {
    let server = Scripted::start().await;
    let mut subscription = transport(&server).subscribe(CHANNEL, ReplayFrom::Tip);
    next_news(&mut subscription).await;
    let first = server.cometd().publish("one");
    assert_eq!(next_event(&mut subscription).await.replay_id.0, first);
    server.revoke_sessions();
    let second = server.cometd().publish("two");
    match next_news(&mut subscription).await {
        StreamItem::Reconnecting { reason, .. } => {
            assert!(reason.contains("401::Authentication invalid"), "{reason}");
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    assert_eq!(
        next_news(&mut subscription).await,
        StreamItem::Connected {
            from: ReplayFrom::After(ReplayId(first))
        }
    );
    assert_eq!(next_event(&mut subscription).await.replay_id.0, second);
    assert_eq!(server.token_requests().len(), 2, "one new login");

    server.reject_every_token();
    server.revoke_sessions();
    let error = loop {
        match tokio::time::timeout(PATIENCE, subscription.next())
            .await
            .unwrap()
        {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    assert_eq!(error.class(), sfpg_salesforce::ErrorClass::Auth, "{error}");
    assert!(
        error.to_string().contains("401::Authentication invalid"),
        "{error}"
    );
    assert_eq!(
        server.token_requests().len(),
        3,
        "one more login, then no loop"
    );
}

#[tokio::test]
async fn a_stalled_connect_is_torn_down_before_a_new_client_subscribes() {
    let server = Scripted::start().await;
    let options = CometDOptions {
        stall_timeout: Duration::from_millis(700),
        ..options()
    };
    let mut subscription =
        CometD::with_options(server.client(), options).subscribe(CHANNEL, ReplayFrom::Tip);
    next_news(&mut subscription).await;
    let first = server.cometd().publish("one");
    assert_eq!(next_event(&mut subscription).await.replay_id.0, first);
    server.cometd().stall_connects(1);
    // Let the next connect reach the server and stall there before the event is published.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = server.cometd().publish("two");
    let mut items = Vec::new();
    while items
        .iter()
        .filter(|i| matches!(i, StreamItem::Event(_)))
        .count()
        < 1
    {
        items.push(next_news(&mut subscription).await);
    }
    match &items[0] {
        StreamItem::Reconnecting { reason, .. } => {
            assert!(
                reason.contains("no answer to a connect within 0.7s"),
                "{reason}"
            );
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    assert_eq!(
        items[1],
        StreamItem::Connected {
            from: ReplayFrom::After(ReplayId(first))
        }
    );
    let StreamItem::Event(event) = &items[2] else {
        panic!("{items:?}")
    };
    assert_eq!(event.replay_id.0, second);
    // Nothing else arrives: the event came once.
    let quiet =
        tokio::time::timeout(Duration::from_millis(800), next_news(&mut subscription)).await;
    assert!(quiet.is_err(), "a second delivery: {quiet:?}");
    let client = |n: u32| Some(format!("scripted-client-{n}"));
    let order: Vec<_> = metas(&server);
    let disconnect = order
        .iter()
        .position(|m| *m == ("/meta/disconnect".to_owned(), client(1)))
        .expect("the stalled client was disconnected");
    let handshakes: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, m)| m.0 == "/meta/handshake")
        .map(|(i, _)| i)
        .collect();
    assert!(disconnect < handshakes[1], "{order:?}");
    assert_eq!(
        server.cometd().max_live(),
        1,
        "two clients subscribed at once"
    );
}

#[tokio::test]
async fn a_dropped_connection_loses_no_event() {
    let server = Scripted::start().await;
    let mut subscription = transport(&server).subscribe(CHANNEL, ReplayFrom::Tip);
    next_news(&mut subscription).await;
    let first = server.cometd().publish("one");
    assert_eq!(next_event(&mut subscription).await.replay_id.0, first);
    server.cometd().drop_connects(1);
    let second = server.cometd().publish("two");
    assert!(matches!(
        next_news(&mut subscription).await,
        StreamItem::Reconnecting { .. }
    ));
    assert_eq!(
        next_news(&mut subscription).await,
        StreamItem::Connected {
            from: ReplayFrom::After(ReplayId(first))
        }
    );
    assert_eq!(next_event(&mut subscription).await.replay_id.0, second);
    assert_eq!(server.cometd().max_live(), 1);
}

#[tokio::test]
async fn an_invalid_replay_id_is_a_typed_error_and_never_a_jump_to_the_tip() {
    let server = Scripted::start().await;
    let old = server.cometd().publish("old");
    let newer = server.cometd().publish("newer");
    server.cometd().expire_before(newer);
    let mut subscription =
        transport(&server).subscribe(CHANNEL, ReplayFrom::After(ReplayId(old - 3)));
    let error = tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .unwrap()
        .unwrap_err();
    assert!(error.is_replay_id_invalid(), "{error}");
    assert!(
        error.to_string().contains("you provided was invalid"),
        "{error}"
    );
    let error = subscription.next().await.unwrap_err();
    assert!(!error.is_replay_id_invalid(), "ended: {error}");
    let subscribes: Vec<_> = server
        .cometd()
        .seen()
        .into_iter()
        .filter(|s| s.channel == "/meta/subscribe")
        .map(|s| s.replay)
        .collect();
    assert_eq!(subscribes, [Some(old - 3)], "no fallback subscribe");
    assert_eq!(
        metas(&server).last().unwrap().0,
        "/meta/disconnect",
        "its client is let go"
    );
}

#[tokio::test]
async fn a_second_subscription_of_a_channel_ends_the_first_before_it_subscribes() {
    let server = Scripted::start().await;
    let transport = transport(&server);
    let mut first_subscription = transport.subscribe(CHANNEL, ReplayFrom::Tip);
    next_news(&mut first_subscription).await;
    let first = server.cometd().publish("one");
    assert_eq!(next_event(&mut first_subscription).await.replay_id.0, first);

    let mut second_subscription = transport.subscribe(CHANNEL, ReplayFrom::After(ReplayId(first)));
    let later: Vec<i64> = (0..3)
        .map(|n| server.cometd().publish(&n.to_string()))
        .collect();
    // Both are polled at once: only the second may deliver.
    let old = tokio::spawn(async move {
        let mut events = Vec::new();
        loop {
            match first_subscription.next().await {
                Ok(StreamItem::Event(event)) => events.push(event.replay_id.0),
                Ok(_) => {}
                Err(error) => return (events, error.to_string()),
            }
        }
    });
    let mut events = Vec::new();
    while events.len() < later.len() {
        if let StreamItem::Event(event) = next_news(&mut second_subscription).await {
            events.push(event.replay_id.0);
        }
    }
    let quiet = tokio::time::timeout(
        Duration::from_millis(600),
        next_news(&mut second_subscription),
    )
    .await;
    assert!(quiet.is_err(), "more events: {quiet:?}");
    let (old_events, ended) = tokio::time::timeout(PATIENCE, old).await.unwrap().unwrap();
    assert_eq!(events, later);
    assert!(
        old_events.is_empty(),
        "the replaced subscription delivered {old_events:?}"
    );
    assert!(ended.contains("replaced"), "{ended}");
    let order = metas(&server);
    let disconnect = order
        .iter()
        .position(|m| {
            *m == (
                "/meta/disconnect".to_owned(),
                Some("scripted-client-1".to_owned()),
            )
        })
        .expect("the first client was disconnected");
    let second_handshake = order
        .iter()
        .enumerate()
        .filter(|(_, m)| m.0 == "/meta/handshake")
        .nth(1)
        .unwrap()
        .0;
    assert!(disconnect < second_handshake, "{order:?}");
    assert_eq!(server.cometd().max_live(), 1);
}

#[tokio::test]
async fn dropping_a_subscription_disconnects_its_client() {
    let server = Scripted::start().await;
    let transport = transport(&server);
    let mut subscription = transport.subscribe(CHANNEL, ReplayFrom::Tip);
    next_news(&mut subscription).await;
    drop(subscription);
    let disconnected = || {
        metas(&server).contains(&(
            "/meta/disconnect".to_owned(),
            Some("scripted-client-1".to_owned()),
        ))
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !disconnected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(disconnected(), "{:?}", metas(&server));
    // The channel is free: a new subscription does not replace anything.
    let mut again = transport.subscribe(CHANNEL, ReplayFrom::Tip);
    assert!(matches!(
        next_news(&mut again).await,
        StreamItem::Connected { .. }
    ));
}

#[tokio::test]
async fn a_next_dropped_while_a_connect_is_answered_loses_no_event() {
    let server = Scripted::start().await;
    let mut subscription = transport(&server).subscribe(CHANNEL, ReplayFrom::Tip);
    next_news(&mut subscription).await;
    let first = server.cometd().publish("one");
    assert_eq!(next_event(&mut subscription).await.replay_id.0, first);
    server
        .cometd()
        .delay_next_answer(Duration::from_millis(600));
    let second = server.cometd().publish("two");
    // The caller gives up on `next` (a select, a timeout) after the server took the event.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), subscription.next()).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    let mut items = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let item = subscription.next().await.unwrap();
            if let StreamItem::Event(event) = &item {
                return event.replay_id.0;
            }
            items.push(item);
        }
    })
    .await;
    assert_eq!(found, Ok(second), "after {items:?}");
    assert_eq!(
        items,
        [StreamItem::Connected {
            from: ReplayFrom::After(ReplayId(first))
        }]
    );
    assert_eq!(server.cometd().max_live(), 1);
}
