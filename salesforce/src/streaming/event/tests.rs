//! Decoding of change events as CometD delivers them (reference §6.3, §6.4).

use serde_json::json;

use super::*;

fn data(header: Value, fields: Value) -> Value {
    let mut payload = fields.as_object().cloned().unwrap();
    payload.insert("ChangeEventHeader".to_owned(), header);
    json!({"schema": "IeRuaY6cbI_HsV8Rv1Mc5g", "payload": payload, "event": {"replayId": 17}})
}

fn header(change_type: &str) -> Value {
    json!({
        "entityName": "Account",
        "recordIds": ["001xx000003DGb2AAG"],
        "changeType": change_type,
        "changedFields": [],
        "changeOrigin": "com/salesforce/api/rest/62.0;client=sfpg",
        "transactionKey": "0002343d-9d90-e395-ed20-cf416ba652ad",
        "sequenceNumber": 2,
        "commitTimestamp": 1_569_443_783_000_i64,
        "commitNumber": 10_960_420_230_000_i64,
        "commitUser": "005xx000001SwDvAAK",
    })
}

#[test]
fn a_create_with_a_compound_address() {
    let fields = json!({
        "Name": "Acme",
        "BillingAddress": {"Street": "1 Main St", "City": "Paris", "Country": "France"},
        "LastModifiedDate": "2019-09-25T20:36:23.000Z",
    });
    let event =
        ChangeEvent::from_cometd("/data/ChangeEvents", data(header("CREATE"), fields)).unwrap();
    assert_eq!(event.replay_id, ReplayId(17));
    assert_eq!(event.channel, "/data/ChangeEvents");
    assert_eq!(event.schema.as_deref(), Some("IeRuaY6cbI_HsV8Rv1Mc5g"));
    assert_eq!(event.header.entity_name, "Account");
    assert_eq!(event.header.change_type, ChangeType::Create);
    assert_eq!(event.header.record_ids, ["001xx000003DGb2AAG"]);
    assert_eq!(event.header.sequence_number, 2);
    assert_eq!(event.header.commit_timestamp, 1_569_443_783_000);
    assert_eq!(event.header.commit_number, 10_960_420_230_000);
    assert_eq!(event.header.commit_user, "005xx000001SwDvAAK");
    assert!(event.header.nulled_fields.is_empty(), "CometD sends none");
    assert!(!event.fields.contains_key("ChangeEventHeader"));
    assert_eq!(event.fields["BillingAddress"]["City"], "Paris");
    let flat = event.flattened_fields();
    assert_eq!(flat["BillingStreet"], "1 Main St");
    assert_eq!(flat["BillingCity"], "Paris");
    assert_eq!(flat["BillingCountry"], "France");
    assert_eq!(flat["Name"], "Acme", "Account's Name is not compound");
    assert!(!flat.contains_key("BillingAddress"));
    assert!(event.nulled_fields().is_empty());
}

#[test]
fn an_update_keeps_explicit_nulls_also_inside_compound_fields() {
    let mut header = header("UPDATE");
    header["entityName"] = "Contact".into();
    header["changedFields"] = json!(["Phone", "Name.FirstName", "LastModifiedDate"]);
    let fields = json!({
        "Phone": null,
        "Name": {"FirstName": null, "LastName": "Doe"},
        "LastModifiedDate": "2019-09-25T20:36:23.000Z",
    });
    let event = ChangeEvent::from_cometd("/data/ContactChangeEvent", data(header, fields)).unwrap();
    assert_eq!(event.header.change_type, ChangeType::Update);
    assert!(event.fields.contains_key("Phone"));
    assert_eq!(event.fields["Phone"], Value::Null);
    let flat = event.flattened_fields();
    assert_eq!(flat.get("FirstName"), Some(&Value::Null));
    assert_eq!(flat["LastName"], "Doe");
    assert!(!flat.contains_key("Email"), "absent fields stay absent");
    let mut nulled = event.nulled_fields();
    nulled.sort();
    assert_eq!(nulled, ["FirstName", "Phone"]);
}

#[test]
fn nulled_fields_of_the_header_are_kept() {
    let mut header = header("UPDATE");
    header["nulledFields"] = json!(["Fax"]);
    header["diffFields"] = json!(["Description"]);
    let event = ChangeEvent::from_cometd("/data/ChangeEvents", data(header, json!({}))).unwrap();
    assert_eq!(event.nulled_fields(), ["Fax"]);
    assert_eq!(event.header.diff_fields, ["Description"]);
}

#[test]
fn custom_compound_fields_take_their_component_names() {
    let fields = json!({"Place__c": {"Latitude": 48.85, "Longitude": 2.35}, "OtherAddress": null});
    let event =
        ChangeEvent::from_cometd("/data/ChangeEvents", data(header("UPDATE"), fields)).unwrap();
    let flat = event.flattened_fields();
    assert_eq!(flat["Place__Latitude__s"], 48.85);
    assert_eq!(flat["Place__Longitude__s"], 2.35);
    assert_eq!(flat.get("OtherAddress"), Some(&Value::Null));
}

#[test]
fn delete_and_gap_events_carry_no_values() {
    for (name, change_type) in [
        ("DELETE", ChangeType::Delete),
        ("UNDELETE", ChangeType::Undelete),
        ("GAP_CREATE", ChangeType::GapCreate),
        ("GAP_UPDATE", ChangeType::GapUpdate),
        ("GAP_DELETE", ChangeType::GapDelete),
        ("GAP_UNDELETE", ChangeType::GapUndelete),
    ] {
        let event =
            ChangeEvent::from_cometd("/data/ChangeEvents", data(header(name), json!({}))).unwrap();
        assert_eq!(event.header.change_type, change_type);
        assert_eq!(change_type.as_str(), name);
        assert_eq!(change_type.is_gap(), name.starts_with("GAP_"));
        assert!(event.fields.is_empty());
    }
}

#[test]
fn an_overflow_names_only_the_entity() {
    let header = json!({
        "entityName": "Account",
        "changeType": "GAP_OVERFLOW",
        "recordIds": null,
        "changeOrigin": null,
        "transactionKey": "0002343d",
        "sequenceNumber": 100_001,
        "commitTimestamp": 1_569_443_783_000_i64,
    });
    let event = ChangeEvent::from_cometd("/data/ChangeEvents", data(header, json!({}))).unwrap();
    assert_eq!(event.header.change_type, ChangeType::GapOverflow);
    assert!(event.header.change_type.is_gap());
    assert!(event.header.record_ids.is_empty());
    assert_eq!(event.header.change_origin, "");
}

#[test]
fn malformed_events_are_errors_not_dropped() {
    let no_header = json!({"payload": {"Name": "x"}, "event": {"replayId": 1}});
    let error = ChangeEvent::from_cometd("/data/ChangeEvents", no_header).unwrap_err();
    assert!(error.to_string().contains("ChangeEventHeader"), "{error}");
    let no_replay_id = data(header("CREATE"), json!({}));
    let mut no_replay_id = no_replay_id.as_object().cloned().unwrap();
    no_replay_id.insert("event".to_owned(), json!({}));
    let error = ChangeEvent::from_cometd("/data/ChangeEvents", no_replay_id.into()).unwrap_err();
    assert!(error.to_string().contains("replayId"), "{error}");
    let unknown = data(header("MERGE"), json!({}));
    assert!(ChangeEvent::from_cometd("/data/ChangeEvents", unknown).is_err());
}
