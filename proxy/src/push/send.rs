//! Sending a plan: one Composite request with `allOrNone: true`, at the interactive
//! priority of the org's rate limiter, whose subrequests are the plan's sObject
//! Collections calls in order: each level of creates, then updates, then deletes.
//!
//! A create or update that refers to a row created in the same push sends
//! `@{create_L_K[i].id}`, the Id of the `i`-th record of an earlier level's call, in place
//! of the provisional sfid. Salesforce runs the request as one transaction: a refused
//! record rolls everything back, so a refused push leaves Salesforce as it found it and
//! nothing needs undoing.

use std::collections::HashMap;

use serde_json::{Value, json};
use sfpg_salesforce::composite::{Subrequest, SubrequestResult};
use sfpg_salesforce::error::{ALL_OR_NONE_OPERATION_ROLLED_BACK, PROCESSING_HALTED};
use sfpg_salesforce::{ApiError, Record};
use tokio_postgres::error::SqlState;

use super::Refusal;
use super::journal::Outcome;
use super::plan::{Operation, Plan, Planned, SpoolError};
use super::refusal::{from_record_error, sqlstate_for};

/// What Salesforce did with a plan.
#[derive(Debug)]
pub struct Sent {
    /// The Id of each create, in plan order.
    pub created: Vec<String>,
    /// The `EventUuid` of each create that published a platform event (its save result's
    /// `OPERATION_ENQUEUED` message), in plan order of the creates; `None` for records.
    pub event_uuids: Vec<Option<String>>,
    /// The Composite response, for the journal.
    pub response: Value,
}

/// A plan Salesforce did not take, or may not have.
#[derive(Debug)]
pub struct Failure {
    pub refusal: Refusal,
    /// The Composite response or error, for the journal.
    pub response: Value,
    /// `Refused` (Salesforce answered no), `Failed` (the request never reached it) or
    /// `Unknown` (it may have, and no answer came back).
    pub outcome: Outcome,
}

/// One subrequest and the plan records it carries.
struct Call {
    subrequest: Subrequest,
    records: Vec<usize>,
}

pub async fn send(plan: &Plan) -> Result<Sent, Failure> {
    let calls = calls(plan).map_err(|error| Failure {
        response: json!({ "error": error.to_string() }),
        refusal: super::refusal::unspooled(error),
        outcome: Outcome::Failed,
    })?;
    let subrequests: Vec<Subrequest> = calls.iter().map(|c| c.subrequest.clone()).collect();
    let results = plan
        .org
        .client
        .composite()
        .all_or_none(true)
        .send(&subrequests)
        .await
        .map_err(|error| {
            let (outcome, refusal) = if error.may_have_taken_effect() {
                (Outcome::Unknown, super::refusal::unknown_outcome(&error))
            } else {
                let outcome = if error.status().is_some() {
                    Outcome::Refused
                } else {
                    Outcome::Failed
                };
                let refusal = super::refusal::from_salesforce_error(&error, "push the transaction");
                (outcome, refusal)
            };
            Failure {
                refusal,
                response: json!({ "error": error.to_string() }),
                outcome,
            }
        })?;
    let response = serde_json::to_value(&results).unwrap_or(Value::Null);
    if let Some(refusal) = refused(plan, &calls, &results) {
        return Err(Failure {
            refusal,
            response,
            outcome: Outcome::Refused,
        });
    }
    // Each create's Id, from its call's answer, in plan order.
    let mut ids: HashMap<usize, String> = HashMap::new();
    let mut uuids: HashMap<usize, String> = HashMap::new();
    for (call, result) in calls.iter().zip(&results) {
        let Some(saved) = result.save_results() else {
            continue;
        };
        for (&index, saved) in call.records.iter().zip(saved) {
            if let Some(uuid) = saved.event_uuid() {
                uuids.insert(index, uuid.to_owned());
            }
            if let Some(id) = saved.id {
                ids.insert(index, id.as_str().to_owned());
            }
        }
    }
    let creates: Vec<usize> = plan
        .records
        .iter()
        .enumerate()
        .filter(|(_, p)| p.operation == Operation::Create)
        .map(|(index, _)| index)
        .collect();
    let created = creates
        .iter()
        .map(|index| ids.remove(index).unwrap_or_default())
        .collect();
    let event_uuids = creates.iter().map(|index| uuids.remove(index)).collect();
    Ok(Sent {
        created,
        event_uuids,
        response,
    })
}

/// The plan's calls as subrequests, references to earlier creates filled in. An atomic
/// plan holds its values in memory; `Err` only should a spool be read and fail.
fn calls(plan: &Plan) -> Result<Vec<Call>, SpoolError> {
    // Where each create goes: its call's referenceId and its place in that call.
    let mut placed: HashMap<usize, (String, usize)> = HashMap::new();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut calls = Vec::new();
    for (operation, records) in plan.calls() {
        let kind = operation.as_str();
        let n = counts.entry(kind).or_default();
        let reference_id = match operation {
            Operation::Create => {
                let level = plan.records[records[0]].level;
                format!("create_{level}_{n}")
            }
            _ => format!("{kind}_{n}"),
        };
        *n += 1;
        let subrequest = match operation {
            Operation::Create | Operation::Update => {
                let sent = records
                    .iter()
                    .map(|&i| with_references(plan, &plan.records[i], &placed))
                    .collect::<Result<Vec<Record>, SpoolError>>()?;
                if operation == Operation::Create {
                    for (position, &i) in records.iter().enumerate() {
                        placed.insert(i, (reference_id.clone(), position));
                    }
                    Subrequest::create_records(&reference_id, &sent)
                } else {
                    Subrequest::update_records(&reference_id, &sent)
                }
            }
            Operation::Delete => {
                let ids: Vec<&str> = records
                    .iter()
                    .filter_map(|&i| plan.records[i].sfid.as_deref())
                    .collect();
                Subrequest::delete_records(&reference_id, &ids)
            }
        };
        calls.push(Call {
            subrequest,
            records,
        });
    }
    Ok(calls)
}

/// The record as sent: each field that refers to a create of the push becomes a reference
/// to that create's new Id. The plan puts parents in earlier calls, so each is placed.
fn with_references(
    plan: &Plan,
    planned: &Planned,
    placed: &HashMap<usize, (String, usize)>,
) -> Result<Record, SpoolError> {
    let mut record = plan.record(planned)?;
    for reference in &planned.references {
        if let Some((reference_id, position)) = placed.get(&reference.create) {
            record.insert(
                reference.field.clone(),
                Value::String(Subrequest::record_id(reference_id, *position)),
            );
        }
    }
    Ok(record)
}

/// The refusal of the subrequest that failed for a reason of its own: a record's error,
/// or the subrequest's. The others carry ALL_OR_NONE_OPERATION_ROLLED_BACK or
/// PROCESSING_HALTED.
fn refused(plan: &Plan, calls: &[Call], results: &[SubrequestResult]) -> Option<Refusal> {
    if results.iter().all(SubrequestResult::succeeded) {
        return None;
    }
    let mut rolled_back = None;
    for (call, result) in calls.iter().zip(results) {
        if result.succeeded() {
            continue;
        }
        match result.save_results() {
            Some(saved) => {
                for (&index, saved) in call.records.iter().zip(&saved) {
                    let planned = &plan.records[index];
                    for error in &saved.errors {
                        let refusal = from_record_error(
                            error,
                            &planned.object,
                            planned.operation.as_str(),
                            planned.row_id,
                        );
                        if error.status_code != ALL_OR_NONE_OPERATION_ROLLED_BACK {
                            return Some(refusal);
                        }
                        rolled_back.get_or_insert(refusal);
                    }
                }
            }
            None => {
                let errors = result.errors();
                if let Some(error) = errors.iter().find(|e| e.error_code != PROCESSING_HALTED) {
                    return Some(subrequest_refusal(plan, call, error));
                }
            }
        }
    }
    Some(rolled_back.unwrap_or_else(|| {
        Refusal::new(
            SqlState::SYSTEM_ERROR,
            "Salesforce refused the push without saying which record it refused",
        )
        .detail(PROCESSING_HALTED)
    }))
}

/// A subrequest Salesforce refused as a whole (a malformed Id, a resource it does not
/// serve): the error as it came, about the call's object when it has one.
fn subrequest_refusal(plan: &Plan, call: &Call, error: &ApiError) -> Refusal {
    let sqlstate = match sqlstate_for(&error.error_code) {
        SqlState::DATA_EXCEPTION => SqlState::SYSTEM_ERROR,
        known => known,
    };
    let first = call.records.first().map(|&i| &plan.records[i]);
    let what = first.map_or_else(
        || "push the transaction".to_owned(),
        |p| format!("{} {} records", p.operation.as_str(), p.object.object),
    );
    let mut refusal = Refusal::new(
        sqlstate,
        format!("Salesforce refused to {what}: {}", error.message),
    )
    .detail(error.error_code.clone());
    if let Some(planned) = first {
        refusal = refusal.table(&planned.object.schema, &planned.object.table);
    }
    if let Some(field) = error.fields.first() {
        refusal = refusal.column(field.to_ascii_lowercase());
    }
    refusal
}
