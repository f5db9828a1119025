//! Crash repair: a push Salesforce accepted whose transaction never committed (the proxy
//! died between the two) is found in the write journal and its records are read again
//! from Salesforce into the mirror, under the sync origin. Whether the transaction
//! committed is PostgreSQL's to say (`pg_xact_status`), so a repair is only ever done for
//! a transaction that is over and did not commit; reading a record again is harmless in
//! any case.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sfpg_salesforce::SalesforceId;
use sfpg_schema::mirror::{qualified, quote_ident};

use super::catalog::Catalog;

/// What a repair pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Pushes whose transaction had committed after all.
    pub committed: usize,
    /// Pushes whose records were read back into the mirror.
    pub repaired: usize,
    /// Pushes whose transaction is still open, or whose repair failed this time.
    pub pending: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("write journal repair: {0}")]
pub struct RepairError(String);

/// Resolves every unresolved push of the journal.
pub async fn repair(catalog: &Catalog) -> Result<RepairReport, RepairError> {
    let control = catalog
        .control()
        .get()
        .await
        .map_err(|e| RepairError(e.to_string()))?;
    let rows = control
        .query(
            "SELECT id, org_name, records, pg_xact_status(txid) FROM sfpg.write_journal
              WHERE outcome = 'pushed' AND resolution IS NULL ORDER BY id",
            &[],
        )
        .await
        .map_err(|e| RepairError(e.to_string()))?;
    drop(control);
    let mut report = RepairReport::default();
    for row in rows {
        let id: i64 = row.get(0);
        let org: String = row.get(1);
        let records: Value = row.get(2);
        let status: Option<String> = row.get(3);
        let resolution = match status.as_deref() {
            Some("committed") => "committed",
            Some("in progress") => {
                report.pending += 1;
                continue;
            }
            // Aborted, or too old for PostgreSQL to remember: read the records again.
            _ => match repair_entry(catalog, &org, &records).await {
                Ok(()) => "repaired",
                Err(error) => {
                    tracing::warn!(journal = id, %error, "cannot repair a push yet");
                    report.pending += 1;
                    continue;
                }
            },
        };
        let control = catalog
            .control()
            .get()
            .await
            .map_err(|e| RepairError(e.to_string()))?;
        control
            .execute(
                "UPDATE sfpg.write_journal SET resolution = $2, resolved_at = now() WHERE id = $1",
                &[&id, &resolution],
            )
            .await
            .map_err(|e| RepairError(e.to_string()))?;
        match resolution {
            "committed" => report.committed += 1,
            _ => {
                tracing::info!(journal = id, %org, "repaired a push whose transaction did not commit");
                report.repaired += 1;
            }
        }
    }
    Ok(report)
}

/// Reads the entry's records from Salesforce into the mirror: upserts those that exist,
/// deletes those that do not (any more).
async fn repair_entry(catalog: &Catalog, org: &str, records: &Value) -> Result<(), String> {
    let org = catalog.org_by_name(org).await.map_err(|r| r.to_string())?;
    // (schema, table) -> sfids
    let mut by_table: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for record in records.as_array().into_iter().flatten() {
        let text = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_owned);
        let (Some(schema), Some(table), Some(sfid)) = (text("schema"), text("table"), text("sfid"))
        else {
            continue;
        };
        by_table.entry((schema, table)).or_default().push(sfid);
    }
    for ((schema, table), sfids) in by_table {
        let (_, object) = catalog
            .object(&schema, &table)
            .await
            .map_err(|r| r.to_string())?;
        let ids: Vec<SalesforceId> = sfids
            .iter()
            .filter_map(|id| SalesforceId::parse(id).ok())
            .collect();
        let fields = object.fields();
        let found = org
            .client
            .collections()
            .retrieve(&object.object, &ids, &fields)
            .await
            .map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        let mut gone = Vec::new();
        for (sfid, record) in sfids.iter().zip(found) {
            match record {
                Some(record) => {
                    let mut row = Map::new();
                    for column in &object.columns {
                        if let Some(value) = record.get(&column.field) {
                            row.insert(column.column.clone(), value.clone());
                        }
                    }
                    rows.push(Value::Object(row));
                }
                None => gone.push(sfid.clone()),
            }
        }
        let columns: Vec<String> = object
            .columns
            .iter()
            .map(|c| quote_ident(&c.column))
            .collect();
        let list = columns.join(", ");
        let updates = columns
            .iter()
            .filter(|c| c.as_str() != "\"sfid\"")
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let target = qualified(&schema, &table);
        let mut control = catalog.control().get().await.map_err(|e| e.to_string())?;
        let tx = control.transaction().await.map_err(|e| e.to_string())?;
        tx.batch_execute(sfpg_schema::capture::SET_SYNC_ORIGIN_SQL)
            .await
            .map_err(|e| e.to_string())?;
        if !rows.is_empty() {
            let on_conflict = if updates.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {updates}")
            };
            tx.execute(
                &format!(
                    "INSERT INTO {target} ({list}) SELECT {list} \
                     FROM jsonb_populate_recordset(NULL::{target}, $1::jsonb) \
                     ON CONFLICT (sfid) {on_conflict}"
                ),
                &[&Value::Array(rows)],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        if !gone.is_empty() {
            tx.execute(
                &format!("DELETE FROM {target} WHERE sfid = ANY($1)"),
                &[&gone],
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
