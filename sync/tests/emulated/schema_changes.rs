//! Schema changes: new fields get a column and a backfill, removed fields keep theirs
//! unwritten, narrow columns widen, and a type the column cannot hold pauses that object
//! only, until the change is undone or the column dropped.
//!
//! The org's metadata changes the way a test can change it: the emulator is restarted on
//! the same address with the same records under new object definitions (and a clock that
//! does not move, so the records' Ids and stamps are the same).

use std::sync::Arc;
use std::time::Duration;

use chrono::{Timelike, Utc};
use serde_json::{Value, json};
use sfpg_control::objects::Phase;
use sfpg_emulator::http::{DEFAULT_USERNAME, EmulatorConfig, OrgSource};
use sfpg_emulator::model::ObjectDef;
use sfpg_emulator::org::{Clock, ManualClock, NewUser, Org};
use sfpg_sync::SyncSettings;

use crate::support::{Harness, all_live, map, quiet_settings, run_turns, turn_until};

const V1: &str = r#"{"name": "Gadget__c", "label": "Gadget", "labelPlural": "Gadgets", "keyPrefix": "a0G", "custom": true,
  "fields": [
    {"name": "Name", "label": "Name", "type": "string", "length": 80, "nameField": true},
    {"name": "Amount__c", "label": "Amount", "type": "currency", "precision": 16, "scale": 2, "custom": true},
    {"name": "Size__c", "label": "Size", "type": "string", "length": 20, "custom": true},
    {"name": "Legacy__c", "label": "Legacy", "type": "string", "length": 40, "custom": true}]}"#;

/// V1 with `Color__c` and a formula added, `Legacy__c` removed, `Size__c` longer.
const V2: &str = r#"{"name": "Gadget__c", "label": "Gadget", "labelPlural": "Gadgets", "keyPrefix": "a0G", "custom": true,
  "fields": [
    {"name": "Name", "label": "Name", "type": "string", "length": 80, "nameField": true},
    {"name": "Amount__c", "label": "Amount", "type": "currency", "precision": 16, "scale": 2, "custom": true},
    {"name": "Size__c", "label": "Size", "type": "string", "length": 80, "custom": true},
    {"name": "Color__c", "label": "Color", "type": "string", "length": 40, "custom": true},
    {"name": "Double__c", "label": "Double", "type": "currency", "precision": 18, "scale": 2, "custom": true,
     "calculated": true, "calculatedFormula": "Amount__c * 2"}]}"#;

/// V1 with `Amount__c` turned into a checkbox.
const V3: &str = r#"{"name": "Gadget__c", "label": "Gadget", "labelPlural": "Gadgets", "keyPrefix": "a0G", "custom": true,
  "fields": [
    {"name": "Name", "label": "Name", "type": "string", "length": 80, "nameField": true},
    {"name": "Amount__c", "label": "Amount", "type": "boolean", "custom": true},
    {"name": "Size__c", "label": "Size", "type": "string", "length": 20, "custom": true},
    {"name": "Legacy__c", "label": "Legacy", "type": "string", "length": 40, "custom": true}]}"#;

const GADGETS: usize = 30;

/// An org with `definition` and the same records every time (same Ids, same stamps, given
/// the same clock), each made by `fields`, plus three accounts. The definition is dated
/// now, after any describe the sync made of an earlier one.
fn org(definition: &str, clock: &ManualClock, fields: impl Fn(usize) -> Value) -> Org {
    let records_at = clock.now();
    let mut org = Org::with_clock(Arc::new(clock.clone())).unwrap();
    let user = org
        .add_user(&NewUser::from_username(DEFAULT_USERNAME))
        .unwrap();
    clock.set(Utc::now().max(records_at));
    org.define_object(ObjectDef::from_json(definition).unwrap())
        .unwrap();
    clock.set(records_at);
    for i in 0..GADGETS {
        org.create("Gadget__c", &map(fields(i)), &user).unwrap();
    }
    for i in 0..3 {
        org.create(
            "Account",
            &map(json!({"Name": format!("Account {i}")})),
            &user,
        )
        .unwrap();
    }
    org
}

fn given(org: Org) -> EmulatorConfig {
    EmulatorConfig {
        org: OrgSource::Given(Box::new(org)),
        ..EmulatorConfig::default()
    }
}

fn v1_fields(i: usize) -> Value {
    json!({"Name": format!("G{i}"), "Amount__c": i as f64 * 1.5, "Size__c": "small", "Legacy__c": "old"})
}

fn clock() -> ManualClock {
    ManualClock::new(Utc::now().with_nanosecond(0).unwrap())
}

/// Describes at every maintenance turn.
fn eager_describe() -> SyncSettings {
    SyncSettings {
        describe_interval: Duration::ZERO,
        ..quiet_settings()
    }
}

async fn column_type(harness: &Harness, table: &str, column: &str) -> Option<String> {
    let client = harness.db.connect().await;
    let columns = sfpg_control::mirror::existing_columns(&client, "acme", table)
        .await
        .unwrap();
    columns
        .into_iter()
        .find(|(name, _)| name == column)
        .map(|(_, t)| t)
}

#[tokio::test]
async fn new_fields_are_added_and_filled_removed_ones_kept_and_narrow_ones_widened() {
    let clock = clock();
    let harness = Harness::start(given(org(V1, &clock, v1_fields)), &["Gadget__c"]).await;
    let mut sync = harness.org_sync(eager_describe()).await;
    turn_until(&mut sync, 30, all_live).await;
    harness.assert_mirror_equals_org("Gadget__c").await;

    let harness = harness
        .replace_org(org(V2, &clock, |i| {
            let mut fields = v1_fields(i);
            let fields_map = fields.as_object_mut().unwrap();
            fields_map.remove("Legacy__c");
            if i == 3 {
                fields_map.insert("Color__c".into(), json!("blue"));
                fields_map.insert(
                    "Size__c".into(),
                    json!("a size far longer than twenty characters"),
                );
            }
            fields
        }))
        .await;
    let blue = harness.org_records("Gadget__c", &["Id".into()])[3]["Id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Within two poll turns: describe (the column appears), then a poll that reads it.
    run_turns(&mut sync, 2).await;
    assert_eq!(
        column_type(&harness, "gadget__c", "color__c")
            .await
            .as_deref(),
        Some("character varying(40)")
    );
    assert_eq!(
        column_type(&harness, "gadget__c", "size__c")
            .await
            .as_deref(),
        Some("character varying(80)")
    );
    assert_eq!(
        harness
            .mirror_value("gadget__c", &blue, "color__c")
            .await
            .as_deref(),
        Some("blue")
    );

    // The formula's values never bump SystemModstamp: the field's own backfill fills them.
    turn_until(&mut sync, 20, all_live).await;
    harness.assert_mirror_equals_org("Gadget__c").await;
    assert_eq!(
        harness
            .mirror_value("gadget__c", &blue, "double__c")
            .await
            .as_deref(),
        Some("9.00")
    );

    // The removed field's column stays, with its last values, and status says so.
    let state = &sync.object("Gadget__c").unwrap().state;
    assert_eq!(state.removed_fields, ["Legacy__c"]);
    assert_eq!(
        harness
            .mirror_value("gadget__c", &blue, "legacy__c")
            .await
            .as_deref(),
        Some("old")
    );
    let client = harness.db.connect().await;
    let status = sfpg_control::status::load(&client).await.unwrap();
    assert_eq!(status[0].objects[0].removed_fields, ["Legacy__c"]);
    assert!(status[0].objects[0].pending_fields.is_empty());
}

#[tokio::test]
async fn a_type_the_column_cannot_hold_pauses_that_object_only_until_the_column_is_dropped() {
    let clock = clock();
    let harness =
        Harness::start(given(org(V1, &clock, v1_fields)), &["Account", "Gadget__c"]).await;
    let mut sync = harness.org_sync(eager_describe()).await;
    turn_until(&mut sync, 40, all_live).await;

    let checkbox = |i: usize| json!({"Name": format!("G{i}"), "Amount__c": i.is_multiple_of(2), "Size__c": "small", "Legacy__c": "old"});
    let harness = harness.replace_org(org(V3, &clock, checkbox)).await;
    turn_until(&mut sync, 10, |s| {
        s.object("Gadget__c").unwrap().state.paused_reason.is_some()
    })
    .await;
    let reason = sync
        .object("Gadget__c")
        .unwrap()
        .state
        .paused_reason
        .clone()
        .unwrap();
    assert!(
        reason.contains("Gadget__c.Amount__c changed from numeric(16,2) to boolean"),
        "{reason}"
    );
    assert!(
        reason.contains("paused until the change is reverted or the column is dropped"),
        "{reason}"
    );

    // Accounts go on.
    let account = harness.create("Account", json!({"Name": "Still syncing"}));
    run_turns(&mut sync, 4).await;
    assert_eq!(
        harness
            .mirror_value("account", &account, "name")
            .await
            .as_deref(),
        Some("Still syncing")
    );
    let client = harness.db.connect().await;
    let status = sfpg_control::status::load(&client).await.unwrap();
    let gadget = status[0]
        .objects
        .iter()
        .find(|o| o.object == "Gadget__c")
        .unwrap();
    assert_eq!(gadget.phase_label(), "paused");
    assert_eq!(gadget.paused_reason.as_deref(), Some(reason.as_str()));

    // The operator drops the column: the next describe re-creates it with the new type.
    client
        .batch_execute("ALTER TABLE acme.gadget__c DROP COLUMN amount__c")
        .await
        .unwrap();
    turn_until(&mut sync, 20, |s| {
        let gadget = &s.object("Gadget__c").unwrap().state;
        gadget.paused_reason.is_none()
            && gadget.phase == Phase::Live
            && gadget.pending_field_backfill.is_empty()
    })
    .await;
    assert_eq!(
        column_type(&harness, "gadget__c", "amount__c")
            .await
            .as_deref(),
        Some("boolean")
    );
    harness.assert_mirror_equals_org("Gadget__c").await;
    harness.assert_mirror_equals_org("Account").await;
}
