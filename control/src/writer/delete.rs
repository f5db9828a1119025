//! Deleting mirror rows: by Id (records deleted in Salesforce), and by absence from a range
//! of Ids (what an Id reconciliation proves gone).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::error::ControlError;
use crate::mirror::qualified;
use crate::plan::ObjectPlan;

/// Deletes the rows of these Salesforce Ids; returns how many there were.
pub async fn delete(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    ids: &[String],
) -> Result<u64, ControlError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "DELETE FROM {} WHERE sfid = ANY($1::varchar[])",
        qualified(&plan.schema, &plan.table)
    );
    Ok(client.execute(&sql, &[&ids]).await?)
}

/// A range of Ids: after `after` (or from the first) up to `upto` (or without end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange<'a> {
    pub after: Option<&'a str>,
    pub upto: Option<&'a str>,
}

/// Deletes the rows in `range` that are not in `present` and were last stamped before
/// `modified_before`: what one page of an Id reconciliation proves gone. Ids compare byte
/// by byte (`COLLATE "C"`), as Salesforce orders them, whatever the database's collation.
/// Rows another session holds locked are always left (a reconciliation has no hurry), and
/// their Ids returned with the count of rows deleted.
pub async fn delete_absent(
    client: &impl GenericClient,
    plan: &ObjectPlan,
    range: IdRange<'_>,
    present: &[String],
    modified_before: DateTime<Utc>,
) -> Result<(u64, Vec<String>), ControlError> {
    let table = qualified(&plan.schema, &plan.table);
    // Provisional sfids (`~` and digits) sort after every Salesforce Id: a row the proxy
    // created and has not pushed is never taken for one Salesforce no longer has.
    let absent = "sfid COLLATE \"C\" > $1::text COLLATE \"C\" \
         AND sfid COLLATE \"C\" < '~' \
         AND ($2::text IS NULL OR sfid COLLATE \"C\" <= $2::text COLLATE \"C\") \
         AND sfid <> ALL($3::varchar[]) \
         AND (systemmodstamp IS NULL OR systemmodstamp < $4)";
    let after = range.after.unwrap_or("");
    let params: [&(dyn ToSql + Sync); 4] = [&after, &range.upto, &present, &modified_before];
    let deleted = client
        .execute(
            &format!(
                "DELETE FROM {table} WHERE sfid IN \
                 (SELECT sfid FROM {table} WHERE {absent} FOR UPDATE SKIP LOCKED)"
            ),
            &params,
        )
        .await?;
    // What is left of them is what another session holds.
    let locked = client
        .query(&format!("SELECT sfid FROM {table} WHERE {absent}"), &params)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok((deleted, locked))
}
