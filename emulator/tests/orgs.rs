//! Several orgs in one emulator (`orgs: 2`): each has its own login, data, limits, request
//! log, faults, sessions and events (CometD and Pub/Sub), reached through one instance URL
//! by its access token, and its own admin API under `/__emulator/orgs/{n}/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sfpg_emulator::http::{EmulatorConfig, OrgLogin, OrgSource};
use sfpg_pubsub_proto::{ReplayPreset, TopicRequest};
use tonic::Code;

use common::cometd::Bayeux;
use common::pubsub::{PubSub, fetch};
use common::{API, Harness, refused};

fn two_orgs() -> EmulatorConfig {
    EmulatorConfig {
        orgs: 2,
        org: OrgSource::Each { each: 3, seed: 1 },
        cometd_connect_timeout: Duration::from_millis(300),
        pubsub_keepalive: Duration::from_millis(300),
        ..EmulatorConfig::default()
    }
}

/// Logs in to `org` with the password grant; the access token.
async fn login(h: &Harness, org: &OrgLogin) -> String {
    let response = h
        .http
        .post(h.emulator.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", org.client_id.as_str()),
            ("client_secret", org.client_secret.as_str()),
            ("username", org.username.as_str()),
            ("password", org.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["instance_url"], org.instance_url.as_str());
    body["access_token"].as_str().unwrap().to_owned()
}

/// `GET path` with `token`.
async fn get(h: &Harness, token: &str, path: &str) -> reqwest::Response {
    h.http
        .get(h.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// How many Accounts named `name` the org of `token` has.
async fn accounts_named(h: &Harness, token: &str, name: &str) -> u64 {
    let soql = format!("SELECT Id FROM Account WHERE Name = '{name}'");
    let response = h
        .http
        .get(h.url(&format!("{API}/query")))
        .query(&[("q", soql)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["totalSize"].as_u64().unwrap()
}

/// The admin API of org `number`.
async fn admin_json(h: &Harness, number: usize, path: &str) -> Value {
    let response = h
        .http
        .get(h.url(&format!("/__emulator/orgs/{number}{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_orgs_are_listed_with_their_own_logins() {
    let h = Harness::with(two_orgs()).await;
    let listed: Value = h
        .admin(Method::GET, "/orgs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logins = h.emulator.org_logins();
    assert_eq!(listed, serde_json::to_value(&logins).unwrap());
    assert_eq!(logins.len(), 2);
    let (one, two) = (&logins[0], &logins[1]);
    // The first org keeps the configured login; the second has its own.
    assert_eq!(one.client_id, h.emulator.apps()[0].client_id);
    assert_eq!(one.username, h.emulator.users()[0].username);
    for field in [
        "instanceUrl",
        "clientId",
        "clientSecret",
        "username",
        "password",
    ] {
        assert!(listed[1][field].is_string(), "{field}: {listed}");
    }
    assert_eq!(one.instance_url, two.instance_url);
    assert_ne!(one.client_id, two.client_id);
    assert_ne!(one.username, two.username);
    assert_ne!(one.org_id, two.org_id);

    // Each token carries its org's Id.
    let t1 = login(&h, one).await;
    let t2 = login(&h, two).await;
    assert!(t1.starts_with(&one.org_id[..15]), "{t1}");
    assert!(t2.starts_with(&two.org_id[..15]), "{t2}");

    // Another org's user does not log in through this org's app.
    let crossed = h
        .http
        .post(h.emulator.token_url())
        .form(&[
            ("grant_type", "password"),
            ("client_id", two.client_id.as_str()),
            ("client_secret", two.client_secret.as_str()),
            ("username", one.username.as_str()),
            ("password", one.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(crossed.status(), StatusCode::BAD_REQUEST);
    let body: Value = crossed.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // Client credentials over HTTP Basic find the org by the client id alone.
    let response = h
        .http
        .post(h.emulator.token_url())
        .basic_auth(&two.client_id, Some(&two.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().contains(&two.org_id), "{body}");

    // An org that does not exist.
    let response = h.admin(Method::GET, "/orgs/3/limits").send().await.unwrap();
    refused(response, StatusCode::NOT_FOUND, "INVALID_ADMIN_REQUEST").await;
}

#[tokio::test]
async fn data_and_request_logs_are_each_orgs_own() {
    let h = Harness::with(two_orgs()).await;
    let logins = h.emulator.org_logins();
    let t1 = login(&h, &logins[0]).await;
    let t2 = login(&h, &logins[1]).await;

    // Data: a record made in org 2 is not in org 1, not even by its Id.
    let response = h
        .http
        .post(h.url(&format!("{API}/sobjects/Account")))
        .bearer_auth(&t2)
        .header("User-Agent", "worker-b")
        .json(&json!({"Name": "Only in two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(accounts_named(&h, &t2, "Only in two").await, 1);
    assert_eq!(accounts_named(&h, &t1, "Only in two").await, 0);
    let response = get(&h, &t1, &format!("{API}/sobjects/Account/{id}")).await;
    refused(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    // Request logs: each org logs its own requests, with the session that made them.
    let log2 = admin_json(&h, 2, "/requests").await;
    let log1 = admin_json(&h, 1, "/requests").await;
    let paths = |log: &Value| -> Vec<String> {
        log.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    };
    let create = format!("POST {API}/sobjects/Account");
    assert!(paths(&log2).contains(&create), "{log2}");
    assert!(!paths(&log1).contains(&create), "{log1}");
    let created = log2
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "POST" && r["path"] == format!("{API}/sobjects/Account"))
        .unwrap();
    assert_eq!(created["session"], 1, "{created}");
    assert_eq!(created["userAgent"], "worker-b", "{created}");
    // Today's admin paths are the first org's.
    assert_eq!(
        h.admin(Method::GET, "/requests")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
        log1
    );
}

#[tokio::test]
async fn limits_faults_and_sessions_are_each_orgs_own() {
    let h = Harness::with(two_orgs()).await;
    let logins = h.emulator.org_logins();
    let t1 = login(&h, &logins[0]).await;
    let t2 = login(&h, &logins[1]).await;

    // Limits: org 2's allocation spent, org 1's untouched.
    let response = h
        .http
        .put(h.url("/__emulator/orgs/2/limits"))
        .json(&json!({"max": 50, "consume": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = get(&h, &t2, &format!("{API}/limits")).await;
    refused(response, StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED").await;
    let response = get(&h, &t1, &format!("{API}/limits")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let limits: Value = response.json().await.unwrap();
    assert_eq!(limits["DailyApiRequests"]["Max"], 15_000, "{limits}");
    assert_eq!(admin_json(&h, 2, "/limits").await["max"], 50);
    h.http
        .post(h.url("/__emulator/orgs/2/limits/reset"))
        .send()
        .await
        .unwrap();

    // Faults: a failure injected in org 2 fails only org 2's next request.
    let response = h
        .http
        .post(h.url("/__emulator/orgs/2/faults/failures"))
        .json(&json!({"status": 503, "errorCode": "SERVER_UNAVAILABLE", "count": 1}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        get(&h, &t1, &format!("{API}/limits")).await.status(),
        StatusCode::OK
    );
    refused(
        get(&h, &t2, &format!("{API}/limits")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_UNAVAILABLE",
    )
    .await;

    // Sessions: revoking org 2's leaves org 1's.
    let response = h
        .http
        .post(h.url("/__emulator/orgs/2/sessions/revoke"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    refused(
        get(&h, &t2, &format!("{API}/limits")).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
    )
    .await;
    assert_eq!(
        get(&h, &t1, &format!("{API}/limits")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn change_events_reach_only_their_orgs_subscribers() {
    let h = Harness::with(two_orgs()).await;
    let logins = h.emulator.org_logins();
    let t2 = login(&h, &logins[1]).await;
    let before1 = admin_json(&h, 1, "/cdc").await["lastReplayId"].clone();

    let response = h
        .http
        .post(h.url(&format!("{API}/sobjects/Account")))
        .bearer_auth(&t2)
        .json(&json!({"Name": "Event in two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The event is on org 2's bus only.
    assert_eq!(admin_json(&h, 1, "/cdc").await["lastReplayId"], before1);
    let tip2 = admin_json(&h, 2, "/cdc").await["lastReplayId"]
        .as_i64()
        .unwrap();
    assert!(tip2 >= 1);

    // CometD: org 2's client gets it, org 1's (the harness's) does not.
    let mut c2 = Bayeux {
        harness: &h,
        client_id: String::new(),
        cookie: None,
        token: t2.clone(),
    };
    let (status, replies) = c2
        .post(json!([{"channel": "/meta/handshake", "version": "1.0",
            "supportedConnectionTypes": ["long-polling"], "ext": {"replay": true}, "id": "1"}]))
        .await;
    assert_eq!(status, StatusCode::OK, "{replies}");
    c2.client_id = replies[0]["clientId"].as_str().unwrap().to_owned();
    c2.subscribe("/data/AccountChangeEvent", -2).await;
    let events = c2.events(1).await;
    let ids: Vec<&Value> = events
        .iter()
        .map(|e| &e["data"]["payload"]["ChangeEventHeader"]["recordIds"][0])
        .collect();
    assert!(ids.contains(&&Value::from(id.clone())), "{events:?}");

    let mut c1 = Bayeux::handshake(&h).await;
    c1.subscribe("/data/AccountChangeEvent", -2).await;
    let (events, reply) = c1.connect().await;
    assert_eq!(reply["successful"], true, "{reply}");
    assert!(
        !events.iter().any(|e| e.to_string().contains(&id)),
        "org 1 saw org 2's event: {events:?}"
    );

    // Pub/Sub: org 2's token reads org 2's events, and is refused as org 1's tenant.
    let mut ps = PubSub::connect(&h).await;
    ps.token = t2.clone();
    ps.tenant = logins[1].org_id.clone();
    let info = ps
        .client
        .get_topic(ps.request(TopicRequest {
            topic_name: "/data/AccountChangeEvent".to_owned(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.tenant_guid, logins[1].org_id);
    let mut sub = ps
        .subscribe(fetch(
            "/data/AccountChangeEvent",
            ReplayPreset::Earliest,
            None,
            10,
        ))
        .await
        .unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), sub.responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!batch.events.is_empty());
    let event = ps.decode(&batch.events[batch.events.len() - 1]).await;
    let header = common::pubsub::record(event["ChangeEventHeader"].clone());
    assert_eq!(
        header["recordIds"],
        apache_avro::types::Value::Array(vec![apache_avro::types::Value::String(id.clone())])
    );

    ps.tenant = logins[0].org_id.clone();
    let refused = ps
        .client
        .get_topic(ps.request(TopicRequest {
            topic_name: "/data/AccountChangeEvent".to_owned(),
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn one_org_is_listed_as_configured() {
    let h = Harness::new().await;
    let listed: Value = h
        .admin(Method::GET, "/orgs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["clientId"], h.emulator.apps()[0].client_id);
    assert_eq!(listed[0]["username"], h.emulator.users()[0].username);
    assert_eq!(listed[0]["orgId"], h.emulator.org_id());
    // org 1's prefix and today's paths are the same org.
    let one = admin_json(&h, 1, "/limits").await;
    let today: Value = h
        .admin(Method::GET, "/limits")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, today);
}
