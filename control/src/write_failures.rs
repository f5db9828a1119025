//! `sfpg.write_failures` (migration V16): the records Salesforce refused in a bulk push
//! (`sfpg.bulk_writes`), kept for the role whose transaction it was. The proxy writes them on
//! its own connection; each role reads only its own rows (row-level security); the proxy's
//! repair loop drops those older than `--failures-retention`.

use std::time::Duration;

use tokio_postgres::GenericClient;

use crate::error::ControlError;
use crate::journal::Operation;

/// One refused record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    pub role_name: String,
    pub txid: String,
    pub journal_id: Option<i64>,
    pub org: String,
    /// The ingest job that refused it; none for a record never sent.
    pub job_id: Option<String>,
    pub schema: String,
    pub table: String,
    pub row_id: i64,
    pub sfid: Option<String>,
    pub operation: Operation,
    /// Salesforce's `errorCode`, or the proxy's reason for a record it did not send.
    pub error_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

/// Records `failures`, in one statement per thousand.
pub async fn record(
    client: &impl GenericClient,
    failures: &[WriteFailure],
) -> Result<(), ControlError> {
    for chunk in failures.chunks(1000) {
        let rows: Vec<serde_json::Value> = chunk
            .iter()
            .map(|f| {
                serde_json::json!({
                    "role_name": f.role_name,
                    "txid": f.txid,
                    "journal_id": f.journal_id,
                    "org_name": f.org,
                    "job_id": f.job_id,
                    "schema_name": f.schema,
                    "table_name": f.table,
                    "row_id": f.row_id,
                    "sfid": f.sfid,
                    "operation": f.operation.as_str(),
                    "error_code": f.error_code,
                    "message": f.message,
                    "fields": f.fields,
                })
            })
            .collect();
        client
            .execute(
                "INSERT INTO sfpg.write_failures
                     (role_name, txid, journal_id, org_name, job_id, schema_name, table_name,
                      row_id, sfid, operation, error_code, message, fields)
                 SELECT role_name, txid, journal_id, org_name, job_id, schema_name, table_name,
                        row_id, sfid, operation, error_code, message, fields
                   FROM jsonb_populate_recordset(NULL::sfpg.write_failures, $1::jsonb)",
                &[&serde_json::Value::Array(rows)],
            )
            .await?;
    }
    Ok(())
}

/// Drops the failures older than `retention`; returns how many.
pub async fn purge(client: &impl GenericClient, retention: Duration) -> Result<i64, ControlError> {
    let seconds = retention.as_secs_f64();
    let row = client
        .query_one(
            "SELECT sfpg.purge_write_failures(make_interval(secs => $1))",
            &[&seconds],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The query a client runs to list the failures of its transaction `txid`.
pub fn listing_query(txid: &str) -> String {
    format!(
        "SELECT table_name, row_id, sfid, operation, error_code, message, fields \
         FROM sfpg.write_failures WHERE txid = '{txid}' ORDER BY id"
    )
}

#[cfg(test)]
mod tests;
