//! The Id reconciliation of a large object through a query job (`SELECT Id FROM …`): each
//! page's Ids are `COPY`ed into a temporary table of the session ([`IdSet`]), and once the
//! last page is in, the mirror rows whose Ids the set does not hold are deleted, as a REST
//! sweep's pages do range by range ([`crate::writer::delete_absent`]).
//!
//! Nothing here relies on the order of the pages: a job without `ORDER BY` reads its
//! records in chunks, and whether Salesforce returns the chunks in Id order is not
//! documented. The set lives as long as the sync's connection, like the in-memory sweep
//! that fills it: after a restart both start over, which costs requests, never correctness.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio_postgres::GenericClient;

use super::{CsvError, copy_csv};
use crate::error::ControlError;
use crate::mirror::{qualified, quote_ident};
use crate::plan::ObjectPlan;

/// The Ids a reconciliation has read so far, in a temporary table named after the mirror
/// table's OID (an object's table name can be as long as an identifier may be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSet {
    /// `pg_temp."sfpg_ids_<oid>"`.
    table: String,
}

impl IdSet {
    /// An empty set for `plan`'s table, on `client`'s session (outside any transaction: it
    /// outlives the pages' transactions). A set left by an earlier sweep is emptied.
    pub async fn start(
        client: &impl GenericClient,
        plan: &ObjectPlan,
    ) -> Result<Self, ControlError> {
        let oid: u32 = client
            .query_one(
                "SELECT $1::text::regclass::oid",
                &[&qualified(&plan.schema, &plan.table)],
            )
            .await?
            .try_get(0)?;
        let name = format!("sfpg_ids_{oid}");
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS pg_temp.{0}; CREATE TEMP TABLE {0} (sfid varchar(18))",
                quote_ident(&name)
            ))
            .await?;
        Ok(Self {
            table: format!("pg_temp.{}", quote_ident(&name)),
        })
    }

    /// Adds the Ids of one page (a CSV of one column, `Id`), in the caller's transaction;
    /// returns how many.
    pub async fn add<S, E>(
        &self,
        client: &impl GenericClient,
        plan: &ObjectPlan,
        body: S,
    ) -> Result<u64, CsvError<E>>
    where
        S: Stream<Item = Result<Bytes, E>>,
    {
        let id = plan
            .fields
            .first()
            .ok_or_else(|| ControlError::Unwritable {
                object: plan.object.clone(),
                detail: "a plan without Id".to_owned(),
            })?;
        copy_csv(client, plan, &[id], &self.table, &["sfid".to_owned()], body).await
    }

    /// The last page is in: deletes the rows the set does not hold that were last stamped
    /// before `modified_before` (rows written since the job was asked for, by the proxy
    /// say, are for the feed to speak for), never a provisional sfid, and leaves those
    /// another session holds locked; returns the count deleted and the Ids left locked.
    /// The set is dropped.
    pub async fn delete_absent(
        self,
        client: &impl GenericClient,
        plan: &ObjectPlan,
        modified_before: DateTime<Utc>,
    ) -> Result<(u64, Vec<String>), ControlError> {
        let table = qualified(&plan.schema, &plan.table);
        let set = &self.table;
        client.batch_execute(&format!("ANALYZE {set}")).await?;
        // Provisional sfids (`~` and digits) sort after every Salesforce Id.
        let absent = format!(
            "m.sfid COLLATE \"C\" < '~' \
             AND NOT EXISTS (SELECT 1 FROM {set} i WHERE i.sfid = m.sfid) \
             AND (m.systemmodstamp IS NULL OR m.systemmodstamp < $1)"
        );
        // The rows to delete are locked once, in a CTE joined back by key: as an `IN`
        // subquery, its anti-join ran again for every row of the table (97 s for 1,156
        // rows).
        let deleted = client
            .execute(
                &format!(
                    "WITH gone AS (SELECT m.id FROM {table} m WHERE {absent} FOR UPDATE SKIP LOCKED) \
                     DELETE FROM {table} t USING gone WHERE t.id = gone.id"
                ),
                &[&modified_before],
            )
            .await?;
        let locked = client
            .query(
                &format!("SELECT m.sfid FROM {table} m WHERE {absent}"),
                &[&modified_before],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        client.batch_execute(&format!("DROP TABLE {set}")).await?;
        Ok((deleted, locked))
    }
}
