//! Bulk API 2.0 ingest jobs against the emulator over real HTTP: inserts with valid and
//! refused records side by side and each record's exact outcome; an update leaving absent
//! fields and nulling `null` ones; an upsert by external id; delete and hardDelete; records
//! split in parts, one job and one upload each, their outcomes back in the records' order;
//! every request through the rate limiter and counted.

use sfpg_salesforce::RecordError;
use sfpg_salesforce::bulk::{IngestOperation, IngestReport, JobState, RecordOutcome};

use super::bulk::start_bulk;
use super::*;

const CAP: Duration = Duration::from_millis(100);

async fn emulator() -> RunningEmulator {
    start_bulk(0, Duration::from_millis(50)).await
}

fn create(emulator: &RunningEmulator, object: &str, fields: serde_json::Value) -> String {
    let user = emulator.user_id(DEFAULT_USERNAME).unwrap();
    let user = sfpg_emulator::ids::Id::parse(&user).unwrap();
    emulator.with_org_mut(|org| {
        org.create(object, fields.as_object().unwrap(), &user)
            .unwrap()
            .to_string()
    })
}

fn get(emulator: &RunningEmulator, object: &str, id: &str) -> serde_json::Value {
    emulator.with_org(|org| org.retrieve(object, id, None, "62.0").unwrap())
}

async fn ingest(
    client: &Client,
    object: &str,
    operation: IngestOperation,
    records: Vec<Record>,
) -> IngestReport {
    let report = client
        .bulk()
        .ingest(object, &operation, &records, CAP)
        .await
        .unwrap();
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.outcomes.len(), records.len());
    report
}

fn created(outcome: &RecordOutcome) -> String {
    match outcome {
        RecordOutcome::Succeeded { id, created: true } => id.clone(),
        other => panic!("not created: {other:?}"),
    }
}

fn failed(outcome: &RecordOutcome) -> &RecordError {
    match outcome {
        RecordOutcome::Failed { error, .. } => error,
        other => panic!("not failed: {other:?}"),
    }
}

#[tokio::test]
async fn inserts_report_each_record_valid_or_refused() {
    let emulator = emulator().await;
    let account = create(&emulator, "Account", json!({"Name": "Acme"}));
    let client = client(&emulator);
    let records = vec![
        record(json!({"Account__r": {"Id": account}, "Amount__c": 100, "Tax__c": 20})),
        record(json!({"Account__c": account, "Amount__c": -5, "Status__c": "Draft"})),
        record(json!({"Amount__c": 100, "Tax__c": 20, "Account__r": {"Id": account}})),
        record(json!({"Amount__c": -5, "Status__c": "Void", "Notes__c": "a, \"quoted\"\nline"})),
        record(json!({"Amount__c": 1, "Due_Date__c": "not a date"})),
    ];
    let report = ingest(&client, "Invoice__c", IngestOperation::Insert, records).await;
    assert_eq!(report.jobs.len(), 1);
    assert_eq!(report.jobs[0].state, JobState::JobComplete);
    assert_eq!(report.jobs[0].number_records_processed, 5);
    assert_eq!(report.jobs[0].number_records_failed, 2);

    let first = created(&report.outcomes[0]);
    let third = created(&report.outcomes[2]);
    assert_ne!(first, third, "identical records get a record each");
    let fourth = created(&report.outcomes[3]);
    let refused = failed(&report.outcomes[1]);
    assert_eq!(refused.status_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(
        refused.message,
        "Amount cannot be negative unless the invoice is void."
    );
    assert_eq!(refused.fields, ["Amount__c"]);
    let bad_date = failed(&report.outcomes[4]);
    assert_eq!(bad_date.status_code, "INVALID_FIELD");
    assert_eq!(bad_date.fields, ["Due_Date__c"]);

    let saved = get(&emulator, "Invoice__c", &first);
    assert_eq!(saved["Total__c"], json!(120.0));
    assert_eq!(saved["Account_Name__c"], "Acme");
    let notes = get(&emulator, "Invoice__c", &fourth)["Notes__c"].clone();
    assert_eq!(notes, "a, \"quoted\"\nline");
}

#[tokio::test]
async fn updates_leave_absent_fields_and_null_null_ones() {
    let emulator = emulator().await;
    let a = create(
        &emulator,
        "Account",
        json!({"Name": "A", "BillingCity": "Paris", "Phone": "555"}),
    );
    let b = create(&emulator, "Account", json!({"Name": "B", "Phone": "666"}));
    let client = client(&emulator);
    let records = vec![
        record(json!({"Id": a, "Name": "A2", "Phone": null})),
        record(json!({"Id": b, "BillingCity": "Lyon", "Phone": ""})),
        record(json!({"Id": "001000000000000AAA", "Name": "Nobody"})),
    ];
    let report = ingest(&client, "Account", IngestOperation::Update, records).await;
    let ok = |id: &str| RecordOutcome::Succeeded {
        id: id.to_owned(),
        created: false,
    };
    assert_eq!(report.outcomes[0], ok(&a));
    assert_eq!(report.outcomes[1], ok(&b));
    assert_eq!(failed(&report.outcomes[2]).status_code, "NOT_FOUND");
    let a = get(&emulator, "Account", &a);
    assert_eq!(
        (&a["Name"], &a["BillingCity"], &a["Phone"]),
        (&json!("A2"), &json!("Paris"), &json!(null))
    );
    let b = get(&emulator, "Account", &b);
    assert_eq!(
        (&b["Name"], &b["BillingCity"], &b["Phone"]),
        (&json!("B"), &json!("Lyon"), &json!(null))
    );
}

#[tokio::test]
async fn upserts_by_external_id_update_or_create() {
    let emulator = emulator().await;
    let existing = create(
        &emulator,
        "Invoice__c",
        json!({"External_Id__c": "INV-1", "Amount__c": 1}),
    );
    let client = client(&emulator);
    let records = vec![
        record(json!({"External_Id__c": "INV-2", "Amount__c": 2})),
        record(json!({"External_Id__c": "INV-1", "Amount__c": 10})),
    ];
    let operation = IngestOperation::Upsert {
        external_id_field: "External_Id__c".into(),
    };
    let report = ingest(&client, "Invoice__c", operation, records).await;
    let new = created(&report.outcomes[0]);
    assert_eq!(
        report.outcomes[1],
        RecordOutcome::Succeeded {
            id: existing.clone(),
            created: false
        }
    );
    assert_eq!(get(&emulator, "Invoice__c", &existing)["Amount__c"], 10.0);
    assert_eq!(
        get(&emulator, "Invoice__c", &new)["External_Id__c"],
        "INV-2"
    );
}

#[tokio::test]
async fn delete_goes_to_the_recycle_bin_hard_delete_does_not() {
    let emulator = emulator().await;
    let soft = create(&emulator, "Account", json!({"Name": "Soft"}));
    let hard = create(&emulator, "Account", json!({"Name": "Hard"}));
    let client = client(&emulator);
    let report = ingest(
        &client,
        "Account",
        IngestOperation::Delete,
        vec![record(json!({"Id": soft}))],
    )
    .await;
    assert!(report.outcomes[0].is_success());
    let report = ingest(
        &client,
        "Account",
        IngestOperation::HardDelete,
        vec![record(json!({"Id": hard})), record(json!({"Id": soft}))],
    )
    .await;
    assert!(report.outcomes[0].is_success());
    assert_eq!(failed(&report.outcomes[1]).status_code, "ENTITY_IS_DELETED");
    let all = client
        .query_all("SELECT Id, IsDeleted FROM Account")
        .records()
        .try_collect::<Vec<Record>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "the hard-deleted record is gone: {all:?}");
    assert_eq!(all[0]["Id"], soft.as_str());
    assert_eq!(all[0]["IsDeleted"], true);
}

#[tokio::test]
async fn parts_run_as_one_job_each_and_outcomes_keep_the_records_order() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let records: Vec<Record> = (0..7)
        .map(|i| record(json!({"Name": format!("Part {i}")})))
        .collect();
    // "Name\n" and three rows of "Part i\n" fit in 26 bytes; a fourth does not.
    let report = client
        .bulk()
        .ingest_in_parts("Account", &IngestOperation::Insert, &records, CAP, 26)
        .await
        .unwrap();
    assert!(report.error.is_none());
    assert_eq!(report.jobs.len(), 3);
    for (i, outcome) in report.outcomes.iter().enumerate() {
        let id = created(outcome);
        assert_eq!(
            get(&emulator, "Account", &id)["Name"],
            format!("Part {i}"),
            "record {i}"
        );
    }
    let requests = api_requests(&emulator);
    let uploads = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/batches"))
        .count();
    assert_eq!(uploads, 3, "one upload per job");
    assert!(
        requests.iter().all(|r| r.counted),
        "every Bulk request is an API request"
    );
}

#[tokio::test]
async fn a_header_salesforce_refuses_leaves_every_record_unprocessed() {
    let emulator = emulator().await;
    let client = client(&emulator);
    let records = vec![record(json!({"Name": "A", "Bogus__c": 1}))];
    let report = ingest(&client, "Account", IngestOperation::Insert, records).await;
    assert_eq!(report.jobs[0].state, JobState::Failed);
    assert_eq!(
        report.jobs[0].error_message.as_deref(),
        Some("InvalidBatch : Field name not found : Bogus__c")
    );
    assert_eq!(report.outcomes, [RecordOutcome::Unprocessed]);
}
