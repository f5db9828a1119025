//! Tests of `sfpg.streams`: the checkpoint only moves forward, state and status read back,
//! `set-cdc` reads back in the sync's settings, and objects record their source.

use super::*;
use sfpg_testkit::TestDatabase;

async fn migrated_with_org() -> (TestDatabase, tokio_postgres::Client) {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO sfpg.orgs (name, schema_name, auth_flow, login_url, api_version, client_id,
                                     sealed_credentials)
             VALUES ('acme', 'acme', 'client_credentials', 'https://login.example', '62.0', 'id',
                     '\\x00')",
        )
        .await
        .unwrap();
    (db, client)
}

fn advance(replay_id: i64) -> Advance {
    Advance {
        replay_id,
        commit_at: Utc::now() - chrono::Duration::milliseconds(250),
        events: 2,
        echoes: 1,
        gaps: 0,
    }
}

#[tokio::test]
async fn the_checkpoint_moves_only_forward_and_status_reads_it() {
    let (_db, client) = migrated_with_org().await;
    assert_eq!(
        Checkpoint::load(&client, "acme").await.unwrap().replay_id,
        None
    );
    assert_eq!(
        Checkpoint::load_for_update(&client, "acme")
            .await
            .unwrap()
            .replay_id,
        None
    );
    Checkpoint::advance(&client, "acme", &advance(40))
        .await
        .unwrap();
    Checkpoint::advance(&client, "acme", &advance(12))
        .await
        .unwrap();
    let saved = Checkpoint::load(&client, "acme").await.unwrap();
    assert_eq!(saved.replay_id, Some(40));
    assert!(saved.saved_at.is_some());
    set_state(&client, "acme", StreamState::Connected, None)
        .await
        .unwrap();
    let (name, status) = load_status(&client).await.unwrap().remove(0);
    assert_eq!(name, "acme");
    assert!(status.cdc_enabled);
    assert_eq!(status.state, StreamState::Connected);
    assert_eq!((status.events, status.echoes), (4, 2));
    assert!(
        status.last_lag_ms.is_some_and(|lag| lag >= 250),
        "{status:?}"
    );
    Checkpoint::clear(&client, "acme").await.unwrap();
    assert_eq!(
        Checkpoint::load(&client, "acme").await.unwrap().replay_id,
        None
    );
}

#[tokio::test]
async fn set_cdc_reads_back_and_objects_record_their_source() {
    let (_db, client) = migrated_with_org().await;
    client
        .batch_execute(
            "INSERT INTO sfpg.objects (org_name, object_name, table_name)
             VALUES ('acme', 'Account', 'account'), ('acme', 'Task', 'task')",
        )
        .await
        .unwrap();
    crate::admin::set_cdc_enabled(&client, "acme", false)
        .await
        .unwrap();
    let settings = crate::orgs::OrgSettings::load(&client, "acme")
        .await
        .unwrap()
        .unwrap();
    assert!(!settings.cdc_enabled);
    set_streamed_objects(&client, "acme", &["Account".to_owned()])
        .await
        .unwrap();
    let sources: Vec<(String, String)> = client
        .query(
            "SELECT object_name, source FROM sfpg.objects ORDER BY object_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        sources,
        [
            ("Account".to_owned(), "stream".to_owned()),
            ("Task".to_owned(), "poll".to_owned())
        ]
    );
    assert!(matches!(
        crate::admin::set_cdc_enabled(&client, "nobody", true).await,
        Err(ControlError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_transport_defaults_to_auto_and_set_cdc_and_the_sync_record_read_back() {
    let (_db, client) = migrated_with_org().await;
    let settings = crate::orgs::OrgSettings::load(&client, "acme")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settings.cdc_transport, CdcTransport::Auto);
    assert_eq!(settings.pubsub_endpoint, DEFAULT_PUBSUB_ENDPOINT);
    let (_, status) = load_status(&client).await.unwrap().remove(0);
    assert_eq!(status.cdc_transport, CdcTransport::Auto);
    assert_eq!(status.transport, None, "no stream ran yet");

    crate::admin::set_cdc_transport(&client, "acme", CdcTransport::CometD)
        .await
        .unwrap();
    crate::admin::set_pubsub_endpoint(&client, "acme", "http://127.0.0.1:7000")
        .await
        .unwrap();
    let settings = crate::orgs::OrgSettings::load(&client, "acme")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settings.cdc_transport, CdcTransport::CometD);
    assert_eq!(settings.pubsub_endpoint, "http://127.0.0.1:7000");
    assert!(matches!(
        crate::admin::set_cdc_transport(&client, "nobody", CdcTransport::PubSub).await,
        Err(ControlError::NotFound(_))
    ));

    set_transport(&client, "acme", StreamTransport::CometD, "transport cometd")
        .await
        .unwrap();
    let (_, status) = load_status(&client).await.unwrap().remove(0);
    assert_eq!(status.cdc_transport, CdcTransport::CometD);
    assert_eq!(status.transport, Some(StreamTransport::CometD));
    assert_eq!(status.transport_reason.as_deref(), Some("transport cometd"));
    let refused = client
        .execute(
            "UPDATE sfpg.orgs SET cdc_transport = 'grpc' WHERE name = 'acme'",
            &[],
        )
        .await;
    assert!(
        refused.is_err(),
        "the CHECK constraint refuses other transports"
    );
}
