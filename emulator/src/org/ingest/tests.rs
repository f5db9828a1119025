//! Ingest rows saved through the org: each operation, the CSV cell rules, and that a row
//! meets what a REST write meets (validation, audit fields, formulas, recycle bin).

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value as Json, json};

use super::*;
use crate::org::{ManualClock, NewUser};

const V: &str = "62.0";

struct Fixture {
    org: Org,
    clock: ManualClock,
    admin: Id,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap());
    let mut org = Org::with_clock(Arc::new(clock.clone())).unwrap();
    let admin = org
        .add_user(&NewUser::from_username("admin@example.com"))
        .unwrap();
    Fixture { org, clock, admin }
}

impl Fixture {
    /// Runs `csv` as an `operation` job on `object`, as the HTTP layer does.
    fn ingest(
        &mut self,
        object: &str,
        operation: IngestOperation,
        external_id: Option<&str>,
        csv: &str,
    ) -> Vec<RowOutcome> {
        let (target, _) = self
            .org
            .ingest_target(object, operation, external_id)
            .unwrap();
        let format = crate::org::CsvFormat::default();
        let checked = check_upload(format, csv.as_bytes()).unwrap();
        let columns = self.org.ingest_columns(&target, &checked.header).unwrap();
        let rows: Vec<StringRecord> = upload_reader(format, csv.as_bytes())
            .records()
            .map(Result::unwrap)
            .collect();
        let admin = self.admin;
        self.org.ingest_rows(&target, &columns, &rows, &admin)
    }

    fn get(&self, object: &str, id: &Id) -> Json {
        self.org.retrieve(object, id.as_str(), None, V).unwrap()
    }

    fn account(&mut self, name: &str) -> Id {
        let admin = self.admin;
        let body = json!({"Name": name});
        self.org
            .create("Account", body.as_object().unwrap(), &admin)
            .unwrap()
    }
}

fn succeeded(outcome: &RowOutcome) -> (Id, bool) {
    match outcome {
        RowOutcome::Succeeded { id, created } => (*id, *created),
        RowOutcome::Failed { error, .. } => panic!("row failed: {error:?}"),
    }
}

fn failed(outcome: &RowOutcome) -> (Option<Id>, &SaveError) {
    match outcome {
        RowOutcome::Failed { id, error } => (*id, error),
        RowOutcome::Succeeded { id, .. } => panic!("row saved as {id}"),
    }
}

#[test]
fn inserts_meet_validation_rules_and_compute_formulas() {
    let mut f = fixture();
    let account = f.account("Acme");
    let csv = format!(
        "Account__r.Id,Amount__c,Tax__c,Status__c\n{account},100,20,Draft\n{account},-5,,Draft\n\
         {account},-5,,Void\n"
    );
    let outcomes = f.ingest("Invoice__c", IngestOperation::Insert, None, &csv);
    assert_eq!(outcomes.len(), 3);
    let (first, created) = succeeded(&outcomes[0]);
    assert!(created);
    let (id, error) = failed(&outcomes[1]);
    assert_eq!(id, None);
    assert_eq!(error.status_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(
        error.message,
        "Amount cannot be negative unless the invoice is void."
    );
    succeeded(&outcomes[2]);
    let record = f.get("Invoice__c", &first);
    assert_eq!(record["Total__c"], json!(120.0));
    assert_eq!(record["Account_Name__c"], json!("Acme"));
    assert_eq!(record["CreatedById"], json!(f.admin.as_str()));
    assert_eq!(
        record["SystemModstamp"],
        json!("2024-03-01T12:00:00.000+0000")
    );
}

#[test]
fn required_fields_are_checked_as_for_rest() {
    let mut f = fixture();
    let outcomes = f.ingest(
        "Account",
        IngestOperation::Insert,
        None,
        "Name,BillingState\nAcme,CA\n,CA\n",
    );
    succeeded(&outcomes[0]);
    let (_, error) = failed(&outcomes[1]);
    assert_eq!(error.status_code, "REQUIRED_FIELD_MISSING");
    assert_eq!(error.message, "Required fields are missing: [Name]");
    assert_eq!(error.fields, vec!["Name".to_owned()]);
}

#[test]
fn updates_leave_empty_cells_and_null_na_cells() {
    let mut f = fixture();
    let admin = f.admin;
    let body = json!({"Name": "Acme", "BillingCity": "Paris", "Phone": "555"});
    let id = f
        .org
        .create("Account", body.as_object().unwrap(), &admin)
        .unwrap();
    f.clock.advance(Duration::seconds(30));
    let csv = format!("Id,Name,BillingCity,Phone\n{id},Acme 2,,#N/A\n");
    let outcomes = f.ingest("Account", IngestOperation::Update, None, &csv);
    assert_eq!(succeeded(&outcomes[0]), (id, false));
    let record = f.get("Account", &id);
    assert_eq!(record["Name"], json!("Acme 2"));
    assert_eq!(record["BillingCity"], json!("Paris"));
    assert_eq!(record["Phone"], Json::Null);
    assert_eq!(
        record["SystemModstamp"],
        json!("2024-03-01T12:00:30.000+0000")
    );

    let outcomes = f.ingest(
        "Account",
        IngestOperation::Update,
        None,
        "Id,Name\n,X\n001000000000000AAA,Y\n",
    );
    assert_eq!(failed(&outcomes[0]).1.status_code, "MISSING_ARGUMENT");
    let (missing, error) = failed(&outcomes[1]);
    assert_eq!(error.status_code, "NOT_FOUND");
    assert!(missing.is_some());
}

#[test]
fn upserts_match_by_external_id() {
    let mut f = fixture();
    let first = f.ingest(
        "Invoice__c",
        IngestOperation::Upsert,
        Some("External_Id__c"),
        "External_Id__c,Amount__c\nINV-1,10\n",
    );
    let (id, created) = succeeded(&first[0]);
    assert!(created);
    let second = f.ingest(
        "Invoice__c",
        IngestOperation::Upsert,
        Some("External_Id__c"),
        "External_Id__c,Amount__c\nINV-1,11\nINV-2,12\n,13\n",
    );
    assert_eq!(succeeded(&second[0]), (id, false));
    assert!(succeeded(&second[1]).1);
    assert_eq!(failed(&second[2]).1.status_code, "MISSING_ARGUMENT");
    assert_eq!(f.get("Invoice__c", &id)["Amount__c"], json!(11.0));
}

#[test]
fn delete_goes_to_the_recycle_bin_and_hard_delete_does_not() {
    let mut f = fixture();
    let soft = f.account("Soft");
    let hard = f.account("Hard");
    let contact = {
        let admin = f.admin;
        let body = json!({"LastName": "Other object"});
        f.org
            .create("Contact", body.as_object().unwrap(), &admin)
            .unwrap()
    };
    let outcomes = f.ingest(
        "Account",
        IngestOperation::Delete,
        None,
        &format!("Id,Name\n{soft},ignored\n{contact},x\n"),
    );
    assert_eq!(succeeded(&outcomes[0]), (soft, false));
    assert_eq!(failed(&outcomes[1]).1.status_code, "MALFORMED_ID");
    let outcomes = f.ingest(
        "Account",
        IngestOperation::HardDelete,
        None,
        &format!("Id\n{hard}\n{soft}\n"),
    );
    assert_eq!(succeeded(&outcomes[0]), (hard, false));
    assert_eq!(
        failed(&outcomes[1]),
        (Some(soft), &SaveError::entity_is_deleted())
    );

    let all = f.org.query("SELECT Id FROM Account", true).unwrap();
    let ids: Vec<String> = f
        .org
        .page(&all, 0, all.len(), V)
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![soft.to_string()], "queryAll sees the bin only");
    assert!(f.org.undelete(hard.as_str(), &f.admin.clone()).is_err());
    f.org.undelete(soft.as_str(), &f.admin.clone()).unwrap();

    let deleted = f
        .org
        .deleted(
            "Account",
            Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 3, 2, 0, 0, 0).unwrap(),
        )
        .unwrap();
    let logged: Vec<&str> = deleted["deletedRecords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        logged,
        vec![hard.as_str()],
        "the undeleted record left the log"
    );
}

#[test]
fn jobs_name_an_object_and_an_upsert_key() {
    let f = fixture();
    let e = f
        .org
        .ingest_target("Nope__c", IngestOperation::Insert, None)
        .unwrap_err();
    assert_eq!((e.status, e.error_code.as_str()), (400, "INVALIDENTITY"));
    let e = f
        .org
        .ingest_target("account", IngestOperation::Upsert, None)
        .unwrap_err();
    assert_eq!(
        e.message,
        "External ID was blank for Account. An External ID must be specified for upsert."
    );
    let e = f
        .org
        .ingest_target("Invoice__c", IngestOperation::Upsert, Some("Notes__c"))
        .unwrap_err();
    assert_eq!(e.error_code, "INVALIDJOB");
    let (_, name) = f
        .org
        .ingest_target(
            "invoice__C",
            IngestOperation::Upsert,
            Some("external_id__c"),
        )
        .unwrap();
    assert_eq!(name, "Invoice__c");
}
