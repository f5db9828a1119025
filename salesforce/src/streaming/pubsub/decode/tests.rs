//! Payloads written with apache-avro against a schema shaped like Salesforce's
//! `AccountChangeEvent` (header record first, `["null", T]` unions, a nested compound field,
//! a second compound reusing the named `Address` record, `doc` type annotations), read back
//! into the events CometD would carry.

use apache_avro::types::Value as Avro;
use serde_json::json;

use super::*;

const SCHEMA: &str = r#"{
  "type": "record", "name": "AccountChangeEvent", "namespace": "com.sforce.eventbus",
  "uuid": "a-non-standard-attribute",
  "fields": [
    {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
      {"name": "entityName", "type": "string"},
      {"name": "recordIds", "type": {"type": "array", "items": "string"}},
      {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": "com.sforce.eventbus",
        "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"]}},
      {"name": "changeOrigin", "type": "string"},
      {"name": "transactionKey", "type": "string"},
      {"name": "sequenceNumber", "type": "int"},
      {"name": "commitTimestamp", "type": "long"},
      {"name": "commitNumber", "type": "long"},
      {"name": "commitUser", "type": "string"},
      {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
      {"name": "diffFields", "type": {"type": "array", "items": "string"}},
      {"name": "changedFields", "type": {"type": "array", "items": "string"}}
    ]}, "doc": "Data:EventHeader"},
    {"name": "Name", "type": ["null", "string"], "doc": "Data:Text:00N", "default": null},
    {"name": "Type", "type": ["null", "string"], "doc": "Data:Picklist", "default": null},
    {"name": "BillingAddress", "type": ["null", {"type": "record", "name": "Address", "fields": [
      {"name": "Street", "type": ["null", "string"], "doc": "Data:Text", "default": null},
      {"name": "City", "type": ["null", "string"], "doc": "Data:Text", "default": null},
      {"name": "State", "type": ["null", "string"], "doc": "Data:Text", "default": null}
    ]}], "doc": "Data:Address", "default": null},
    {"name": "Phone", "type": ["null", "string"], "doc": "Data:Phone", "default": null},
    {"name": "ShippingAddress", "type": ["null", "Address"], "doc": "Data:Address", "default": null},
    {"name": "LastModifiedDate", "type": ["null", "long"], "doc": "Data:DateTime", "default": null},
    {"name": "SLAExpirationDate__c", "type": ["null", "int"], "doc": "Data:Date", "default": null},
    {"name": "OpenAt__c", "type": ["null", "long"], "doc": "Data:Time", "default": null},
    {"name": "AnnualRevenue", "type": ["null", "double"], "doc": "Data:Currency", "default": null},
    {"name": "NumberOfEmployees", "type": ["null", "int"], "doc": "Data:Int", "default": null}
  ]
}"#;

fn schema() -> EventSchema {
    EventSchema::parse("schema-1", SCHEMA).unwrap()
}

fn some(value: Avro) -> Avro {
    Avro::Union(1, Box::new(value))
}

fn none() -> Avro {
    Avro::Union(0, Box::new(Avro::Null))
}

fn text(s: &str) -> Avro {
    some(Avro::String(s.to_owned()))
}

fn strings(items: &[&str]) -> Avro {
    Avro::Array(
        items
            .iter()
            .map(|s| Avro::String((*s).to_owned()))
            .collect(),
    )
}

fn address(street: Option<&str>, city: Option<&str>, state: Option<&str>) -> Avro {
    let part = |v: Option<&str>| v.map_or_else(none, text);
    some(Avro::Record(vec![
        ("Street".to_owned(), part(street)),
        ("City".to_owned(), part(city)),
        ("State".to_owned(), part(state)),
    ]))
}

fn header(change_type: (u32, &str), changed: &[&str], nulled: &[&str]) -> Avro {
    Avro::Record(vec![
        ("entityName".to_owned(), Avro::String("Account".to_owned())),
        ("recordIds".to_owned(), strings(&["001000000000001AAA"])),
        (
            "changeType".to_owned(),
            Avro::Enum(change_type.0, change_type.1.to_owned()),
        ),
        (
            "changeOrigin".to_owned(),
            Avro::String("com/salesforce/api/rest/62.0;client=sfpg".to_owned()),
        ),
        ("transactionKey".to_owned(), Avro::String("tx-1".to_owned())),
        ("sequenceNumber".to_owned(), Avro::Int(1)),
        ("commitTimestamp".to_owned(), Avro::Long(1_780_000_000_123)),
        ("commitNumber".to_owned(), Avro::Long(99)),
        (
            "commitUser".to_owned(),
            Avro::String("005000000000001AAA".to_owned()),
        ),
        ("nulledFields".to_owned(), strings(nulled)),
        ("diffFields".to_owned(), strings(&[])),
        ("changedFields".to_owned(), strings(changed)),
    ])
}

/// The record's fields after the header, in schema order.
fn body(values: [Avro; 10]) -> Vec<(String, Avro)> {
    let names = [
        "Name",
        "Type",
        "BillingAddress",
        "Phone",
        "ShippingAddress",
        "LastModifiedDate",
        "SLAExpirationDate__c",
        "OpenAt__c",
        "AnnualRevenue",
        "NumberOfEmployees",
    ];
    names.iter().map(|n| (*n).to_owned()).zip(values).collect()
}

fn encode(schema: &EventSchema, header: Avro, body: Vec<(String, Avro)>) -> Vec<u8> {
    let mut record = vec![(HEADER.to_owned(), header)];
    record.extend(body);
    apache_avro::writer::datum::GenericDatumWriter::builder(&schema.avro)
        .build()
        .unwrap()
        .write_value_to_vec(Avro::Record(record))
        .unwrap()
}

fn decoded(header: Avro, body: Vec<(String, Avro)>) -> ChangeEvent {
    let schema = schema();
    let payload = encode(&schema, header, body);
    change_event(&schema, &payload, ReplayId(42), "/data/ChangeEvents").unwrap()
}

#[test]
fn the_schema_knows_positions_types_and_compounds_through_references() {
    let schema = schema();
    let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names[..5],
        [
            "ChangeEventHeader",
            "Name",
            "Type",
            "BillingAddress",
            "Phone"
        ]
    );
    let (position, shipping) = schema.field("ShippingAddress").unwrap();
    assert_eq!(position, 5);
    let parts: Vec<&str> = shipping
        .nested
        .as_ref()
        .unwrap()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        parts,
        ["Street", "City", "State"],
        "the named Address record, referenced"
    );
    assert_eq!(
        schema.field("LastModifiedDate").unwrap().1.temporal,
        Some(Temporal::DateTime)
    );
    assert_eq!(
        schema.field("SLAExpirationDate__c").unwrap().1.temporal,
        Some(Temporal::Date)
    );
    assert_eq!(schema.field("Phone").unwrap().1.temporal, None);
}

#[test]
fn a_create_carries_the_non_null_fields_with_compounds_nested_and_cometd_dates() {
    let event = decoded(
        header((0, "CREATE"), &["0x07FE"], &[]),
        body([
            text("Acme"),
            none(),
            address(None, Some("Paris"), None),
            text("555"),
            none(),
            some(Avro::Long(1_780_000_000_123)),
            some(Avro::Int(20_000)),
            some(Avro::Long(8 * 3_600_000 + 30 * 60_000 + 1)),
            some(Avro::Double(1.5e6)),
            some(Avro::Int(12)),
        ]),
    );
    assert_eq!(event.replay_id, ReplayId(42));
    assert_eq!(event.channel, "/data/ChangeEvents");
    assert_eq!(event.schema.as_deref(), Some("schema-1"));
    assert_eq!(event.header.change_type, ChangeType::Create);
    assert_eq!(event.header.entity_name, "Account");
    assert_eq!(event.header.commit_timestamp, 1_780_000_000_123);
    assert_eq!(event.header.commit_user, "005000000000001AAA");
    assert_eq!(
        Json::Object(event.fields),
        json!({
            "Name": "Acme",
            "BillingAddress": {"Street": null, "City": "Paris", "State": null},
            "Phone": "555",
            "LastModifiedDate": "2026-05-28T20:26:40.123Z",
            "SLAExpirationDate__c": "2024-10-04",
            "OpenAt__c": "08:30:00.001Z",
            "AnnualRevenue": 1.5e6,
            "NumberOfEmployees": 12,
        })
    );
}

#[test]
fn an_update_carries_changed_and_nulled_fields_only_with_explicit_nulls() {
    // Changed: Phone (4), BillingAddress (3) with City (1), LastModifiedDate (6).
    // Nulled: Phone, and BillingAddress.Street (0) of the nested record.
    let event = decoded(
        header((1, "UPDATE"), &["0x58", "3-0x03"], &["0x18", "3-0x01"]),
        body([
            none(),
            none(),
            address(None, Some("Lyon"), None),
            none(),
            none(),
            some(Avro::Long(0)),
            none(),
            none(),
            none(),
            none(),
        ]),
    );
    assert_eq!(event.header.change_type, ChangeType::Update);
    assert_eq!(
        Json::Object(event.fields.clone()),
        json!({
            "BillingAddress": {"Street": null, "City": "Lyon"},
            "Phone": null,
            "LastModifiedDate": "1970-01-01T00:00:00.000Z",
        })
    );
    assert_eq!(
        event.header.changed_fields,
        [
            "Phone",
            "LastModifiedDate",
            "BillingAddress.Street",
            "BillingAddress.City"
        ],
        "CometD's names: the parts of a compound, not the compound as well"
    );
    assert_eq!(
        event.header.nulled_fields,
        ["Phone", "BillingAddress.Street"]
    );
    let flat = event.flattened_fields();
    assert_eq!(flat["BillingCity"], "Lyon");
    assert_eq!(flat["BillingStreet"], Json::Null);
    let nulled = event.nulled_fields();
    assert!(nulled.contains(&"Phone".to_owned()), "{nulled:?}");
    assert!(nulled.contains(&"BillingStreet".to_owned()), "{nulled:?}");
}

#[test]
fn a_whole_compound_named_without_parts_is_carried_whole() {
    let event = decoded(
        header((1, "UPDATE"), &["0x08"], &["0x08"]),
        body([
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
        ]),
    );
    assert_eq!(Json::Object(event.fields), json!({"BillingAddress": null}));
}

#[test]
fn deletes_and_gaps_carry_no_fields() {
    for change_type in [(2, "DELETE"), (5, "GAP_UPDATE"), (8, "GAP_OVERFLOW")] {
        let event = decoded(
            header(change_type, &["0x02"], &[]),
            body([
                text("still here"),
                none(),
                none(),
                none(),
                none(),
                none(),
                none(),
                none(),
                none(),
                none(),
            ]),
        );
        assert!(
            event.fields.is_empty(),
            "{change_type:?}: {:?}",
            event.fields
        );
        assert_eq!(event.header.change_type.as_str(), change_type.1);
    }
}

#[test]
fn a_payload_of_another_schema_is_an_error() {
    let schema = schema();
    let error = change_event(&schema, b"\x02\x04", ReplayId(1), "/data/ChangeEvents").unwrap_err();
    assert!(matches!(error, DecodeError::Avro { .. }), "{error}");
}
