//! Sending a plan: creates, then updates, then deletes, each one sObject Collections call
//! with `allOrNone=true`, at the interactive priority of the org's rate limiter.
//!
//! Each call is atomic on Salesforce's side; the calls together are not. When a later call
//! fails, what the earlier ones did is undone (created records deleted, updated fields put
//! back), so that a refused transaction leaves Salesforce as it found it. Deletes go last:
//! nothing after them can fail, and they could not be undone.

use serde_json::{Value, json};
use sfpg_salesforce::error::ALL_OR_NONE_OPERATION_ROLLED_BACK;
use sfpg_salesforce::{Record, SalesforceId, SaveResult};

use super::Refusal;
use super::plan::{Operation, Plan, Planned};
use super::refusal::{from_record_error, from_salesforce_error};

/// What Salesforce did with a plan.
#[derive(Debug)]
pub struct Sent {
    /// The Id of each create, in plan order.
    pub created: Vec<String>,
    /// The save results of every call, for the journal.
    pub response: Value,
}

/// A plan Salesforce did not take.
#[derive(Debug)]
pub struct Failure {
    pub refusal: Refusal,
    /// The save results or error, for the journal.
    pub response: Value,
    /// Whether the refusal came from Salesforce (it answered) rather than from failing to
    /// reach it.
    pub refused: bool,
}

pub async fn send(plan: &Plan) -> Result<Sent, Failure> {
    let collections = plan.org.client.collections().all_or_none(true);
    let mut response = serde_json::Map::new();

    let creates: Vec<&Planned> = plan.of(Operation::Create).collect();
    let mut created = Vec::new();
    if !creates.is_empty() {
        let records: Vec<Record> = creates.iter().map(|p| p.record.clone()).collect();
        let results = collections
            .create(&records)
            .await
            .map_err(|e| failed(&e, "create records", &response))?;
        response.insert("create".into(), results_json(&results));
        if let Some(refusal) = refused(&results, &creates) {
            return Err(Failure {
                refusal,
                response: Value::Object(response),
                refused: true,
            });
        }
        created = results
            .iter()
            .map(|r| {
                r.id.as_ref()
                    .map(|id| id.as_str().to_owned())
                    .unwrap_or_default()
            })
            .collect();
    }

    let updates: Vec<&Planned> = plan.of(Operation::Update).collect();
    if !updates.is_empty() {
        let records: Vec<Record> = updates.iter().map(|p| p.record.clone()).collect();
        let outcome = match collections.update(&records).await {
            Ok(results) => {
                response.insert("update".into(), results_json(&results));
                refused(&results, &updates).map(|refusal| (refusal, true))
            }
            Err(error) => Some((from_salesforce_error(&error, "update records"), false)),
        };
        if let Some((refusal, refused)) = outcome {
            undo(plan, &created, &[]).await;
            return Err(Failure {
                refusal,
                response: Value::Object(response),
                refused,
            });
        }
    }

    let deletes: Vec<&Planned> = plan.of(Operation::Delete).collect();
    if !deletes.is_empty() {
        let ids: Vec<SalesforceId> = deletes
            .iter()
            .filter_map(|p| {
                p.sfid
                    .as_deref()
                    .and_then(|id| SalesforceId::parse(id).ok())
            })
            .collect();
        let outcome = match collections.delete(&ids).await {
            Ok(results) => {
                response.insert("delete".into(), results_json(&results));
                refused(&results, &deletes).map(|refusal| (refusal, true))
            }
            Err(error) => Some((from_salesforce_error(&error, "delete records"), false)),
        };
        if let Some((refusal, refused)) = outcome {
            undo(plan, &created, &updates).await;
            return Err(Failure {
                refusal,
                response: Value::Object(response),
                refused,
            });
        }
    }
    Ok(Sent {
        created,
        response: Value::Object(response),
    })
}

fn failed(
    error: &sfpg_salesforce::Error,
    what: &str,
    response: &serde_json::Map<String, Value>,
) -> Failure {
    let mut response = response.clone();
    response.insert("error".into(), json!(error.to_string()));
    Failure {
        refusal: from_salesforce_error(error, what),
        response: Value::Object(response),
        refused: error.status().is_some(),
    }
}

fn results_json(results: &[SaveResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| {
                json!({
                    "id": r.id.as_ref().map(|id| id.as_str()),
                    "success": r.success,
                    "errors": r.errors.iter().map(|e| json!({
                        "statusCode": e.status_code,
                        "message": e.message,
                        "fields": e.fields,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// The refusal of the first record that failed for a reason of its own (the others carry
/// ALL_OR_NONE_OPERATION_ROLLED_BACK).
fn refused(results: &[SaveResult], planned: &[&Planned]) -> Option<Refusal> {
    let mut rolled_back = None;
    for (result, planned) in results.iter().zip(planned) {
        for error in &result.errors {
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
    rolled_back.or_else(|| {
        (results.len() != planned.len() || results.iter().any(|r| !r.success)).then(|| {
            Refusal::new(
                "58000",
                "Salesforce answered the push with results that do not match its records",
            )
        })
    })
}

/// Best effort: puts Salesforce back as it was before the calls that succeeded.
async fn undo(plan: &Plan, created: &[String], updated: &[&Planned]) {
    let collections = plan.org.client.collections().all_or_none(false);
    if !created.is_empty() {
        let ids: Vec<SalesforceId> = created
            .iter()
            .filter_map(|id| SalesforceId::parse(id).ok())
            .collect();
        if let Err(error) = collections.delete(&ids).await {
            tracing::error!(%error, "cannot undo the creates of a refused push");
        }
    }
    if !updated.is_empty() {
        let previous: Vec<Record> = updated.iter().map(|p| p.previous.clone()).collect();
        if let Err(error) = collections.update(&previous).await {
            tracing::error!(%error, "cannot undo the updates of a refused push");
        }
    }
}
