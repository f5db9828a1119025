//! "Does the mirror equal the org?", asked once and used by every scenario of the sync's,
//! the proxy's and the binary's tests: the org's live records, read from the emulator
//! directly (uncounted, unlogged), against the mirror table, over the fields the sync
//! mirrors. The org's JSON is turned into rows by PostgreSQL itself
//! (`json_populate_recordset`), independently of the sync's own writer.

use serde_json::{Map, Value};
use sfpg_emulator::http::RunningEmulator;

/// The org's live records of `object` with `fields`, in Id order.
pub fn org_records(emulator: &RunningEmulator, object: &str, fields: &[String]) -> Vec<Value> {
    let soql = format!("SELECT {} FROM {object} ORDER BY Id", fields.join(", "));
    emulator.with_org(|org| {
        let cursor = org.query(&soql, false).unwrap();
        org.page(&cursor, 0, cursor.len(), "62.0")
    })
}

/// Every difference between the org's live records of `object` and the mirror of `org` in
/// `client`'s database: rows missing, rows extra, values that differ. Empty when they agree.
pub async fn mirror_diff(
    emulator: &RunningEmulator,
    client: &tokio_postgres::Client,
    org: &str,
    object: &str,
) -> Vec<String> {
    let row = client
        .query_one(
            "SELECT o.schema_name, b.table_name, b.mirrored_fields
               FROM sfpg.objects b JOIN sfpg.orgs o ON o.name = b.org_name
              WHERE b.org_name = $1 AND b.object_name = $2",
            &[&org, &object],
        )
        .await
        .unwrap();
    let schema: String = row.get(0);
    let table = format!("\"{schema}\".\"{}\"", row.get::<_, String>(1));
    let mirrored: Value = row.get(2);
    let pairs: Vec<(String, String)> = mirrored
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["field"].as_str().unwrap().to_owned(),
                f["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(!pairs.is_empty(), "{object} has no mirrored fields yet");
    let fields: Vec<String> = pairs.iter().map(|(f, _)| f.clone()).collect();
    let expected: Vec<Value> = org_records(emulator, object, &fields)
        .into_iter()
        .map(|record| {
            let mut row = Map::new();
            for (field, column) in &pairs {
                row.insert(
                    column.clone(),
                    record.get(field).cloned().unwrap_or(Value::Null),
                );
            }
            Value::Object(row)
        })
        .collect();
    let columns = pairs
        .iter()
        .map(|(_, c)| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS pg_temp.expected; CREATE TEMP TABLE expected AS SELECT {columns} FROM {table} WHERE false"
        ))
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO expected SELECT * FROM json_populate_recordset(NULL::pg_temp.expected, $1::json)",
            &[&Value::Array(expected)],
        )
        .await
        .unwrap();
    let diff = format!(
        "SELECT 'missing from the mirror or different: ' || row_to_json(d)::text
           FROM (SELECT {columns} FROM expected EXCEPT ALL SELECT {columns} FROM {table}) d
         UNION ALL
         SELECT 'extra in the mirror or different: ' || row_to_json(d)::text
           FROM (SELECT {columns} FROM {table} EXCEPT ALL SELECT {columns} FROM expected) d"
    );
    client
        .query(&diff, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Asserts that the mirror of `org` in `client`'s database holds exactly the org's live
/// records of each of `objects`.
pub async fn assert_mirror_equals_org(
    emulator: &RunningEmulator,
    client: &tokio_postgres::Client,
    org: &str,
    objects: &[&str],
) {
    for object in objects {
        let diff = mirror_diff(emulator, client, org, object).await;
        assert!(
            diff.is_empty(),
            "{org}.{object}: the mirror differs from the org ({} differences):\n{}",
            diff.len(),
            diff.join("\n")
        );
    }
}
