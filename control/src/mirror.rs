//! DDL for the mirror: one schema per org, one table per object, one column per mirrored
//! field, following Heroku Connect's conventions (local `id bigserial`, `sfid varchar(18)
//! unique`, `systemmodstamp`, `isdeleted`), so that its users can point existing apps at sfpg.
//!
//! `sfid` defaults to a provisional value (`sfpg.provisional_sfid()`, migration V5) so that
//! a transaction through the proxy can reference a row it created before Salesforce has
//! given it an Id; the proxy replaces it with the real Id before the transaction commits.

use tokio_postgres::GenericClient;

use crate::mapping::ColumnType;

/// Quotes an identifier for SQL, whatever characters it holds.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The default of `sfid`: a provisional value, `~` and 17 digits, never a Salesforce Id.
pub const PROVISIONAL_SFID_DEFAULT: &str = "sfpg.provisional_sfid()";

/// Whether `value` is a provisional sfid (`~` and 17 digits) rather than a Salesforce Id.
pub fn is_provisional_sfid(value: &str) -> bool {
    value.len() == 18 && value.starts_with('~') && value.bytes().skip(1).all(|b| b.is_ascii_digit())
}

/// The columns every mirrored table has, whatever the object's describe says.
pub const BASE_COLUMNS: [&str; 4] = ["id", "sfid", "systemmodstamp", "isdeleted"];

/// A mirrored column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
}

/// Creates the org's schema if it does not exist. Each object's sync asks for it as it
/// starts, often in a transaction of its own; two asking at once would race in the
/// catalog, where `IF NOT EXISTS` does not look (the loser's unique violation aborting its
/// transaction), so they take turns on a lock held to the end of the transaction. A
/// schema that exists needs no lock: a worker paused in such a transaction (its lease then
/// taken over) must not hold up the describes of the worker that took its orgs.
pub async fn create_schema(
    client: &impl GenericClient,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    let exists = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await?
        .get::<_, bool>(0);
    if exists {
        return Ok(());
    }
    // One query string: one transaction even outside one, so the lock covers the CREATE.
    client
        .batch_execute(&format!(
            "SELECT pg_catalog.pg_advisory_xact_lock({SCHEMA_LOCK_CLASS}, {}); \
             CREATE SCHEMA IF NOT EXISTS {}",
            schema_lock_key(schema),
            quote_ident(schema)
        ))
        .await
}

/// The advisory lock class (the first key) of [`create_schema`]'s lock.
const SCHEMA_LOCK_CLASS: i32 = 0x5346_5053; // "SFPS"

/// The second key of [`create_schema`]'s lock: the schema's name hashed (FNV-1a), the
/// same in every process.
fn schema_lock_key(schema: &str) -> i32 {
    let hash = schema.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates an object's table with the base columns and `columns` (which may repeat base
/// columns such as `systemmodstamp`; those are skipped), and gives `sfid` its provisional
/// default, also on a table created before the default existed. Otherwise does nothing if
/// the table exists.
pub async fn create_table(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
    columns: &[Column],
) -> Result<(), tokio_postgres::Error> {
    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  id bigserial PRIMARY KEY,\n  sfid varchar(18) UNIQUE,\n  \
         systemmodstamp timestamptz,\n  isdeleted boolean NOT NULL DEFAULT false",
        qualified(schema, table)
    );
    for column in columns
        .iter()
        .filter(|c| !BASE_COLUMNS.contains(&c.name.as_str()))
    {
        ddl.push_str(&format!(
            ",\n  {} {}",
            quote_ident(&column.name),
            column.column_type
        ));
    }
    ddl.push_str("\n)");
    client.batch_execute(&ddl).await?;
    // Lag and incremental checks read the newest stamp; keep that cheap.
    client
        .batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} (systemmodstamp)",
            quote_ident(&format!("{table}_systemmodstamp_idx")),
            qualified(schema, table)
        ))
        .await?;
    set_provisional_default(client, schema, table).await
}

/// Makes `sfpg.provisional_sfid()` the default of the table's `sfid`, when the control
/// schema has that function (a mirror built without the control schema, as some tests do,
/// keeps a NULL default). The table is altered only when its default differs, so that
/// ensuring a table again takes no exclusive lock.
pub(crate) async fn set_provisional_default(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT to_regprocedure('sfpg.provisional_sfid()') IS NOT NULL,
                    (SELECT pg_get_expr(d.adbin, d.adrelid)
                       FROM pg_attrdef d
                       JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                      WHERE d.adrelid = $1::text::regclass AND a.attname = 'sfid')",
            &[&qualified(schema, table)],
        )
        .await?;
    let available: bool = row.get(0);
    let current: Option<String> = row.get(1);
    if !available || current.as_deref() == Some(PROVISIONAL_SFID_DEFAULT) {
        return Ok(());
    }
    client
        .batch_execute(&format!(
            "ALTER TABLE {} ALTER COLUMN sfid SET DEFAULT {PROVISIONAL_SFID_DEFAULT}",
            qualified(schema, table)
        ))
        .await
}

/// Adds a column for a field that appeared in describe.
pub async fn add_column(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
    column: &Column,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
            qualified(schema, table),
            quote_ident(&column.name),
            column.column_type
        ))
        .await
}

/// Widens a column in place (see [`crate::mapping::can_widen`]).
pub async fn widen_column(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
    column: &Column,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "ALTER TABLE {} ALTER COLUMN {} TYPE {}",
            qualified(schema, table),
            quote_ident(&column.name),
            column.column_type
        ))
        .await
}

/// The table's columns and their types as PostgreSQL formats them (`character varying(80)`),
/// in column order; empty when the table does not exist.
pub async fn existing_columns(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Whether the table holds any row: a backfill into it may meet records already mirrored
/// (a resync), so its pages must be merged rather than copied in.
pub async fn has_rows(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<bool, tokio_postgres::Error> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", qualified(schema, table));
    client.query_one(&sql, &[]).await?.try_get(0)
}

/// The newest `SystemModstamp` the table holds: where lag is measured from after pages
/// whose records were never read one by one (a Bulk API query job's).
pub async fn newest_modstamp(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, tokio_postgres::Error> {
    let sql = newest_modstamp_sql(schema, table);
    let row = client.query_opt(&sql, &[]).await?;
    row.map_or(Ok(None), |row| row.try_get(0))
}

/// Read off the end of the `systemmodstamp` index, whatever the planner knows of the table.
/// `max(systemmodstamp)` is planned the same way only when statistics say the table is
/// large; right after a backfill it has none (autovacuum has not analyzed it yet), and
/// PostgreSQL chose to aggregate over the whole index, fetching and hint-bitting every heap
/// row: 4.6 s for 1,000,000 Accounts, inside the last page's transaction (a third of the
/// Bulk backfill's page time, docs/benchmarks.md).
fn newest_modstamp_sql(schema: &str, table: &str) -> String {
    format!(
        "SELECT systemmodstamp FROM {} WHERE systemmodstamp IS NOT NULL \
         ORDER BY systemmodstamp DESC LIMIT 1",
        qualified(schema, table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfpg_testkit::TestDatabase;

    fn col(name: &str, column_type: ColumnType) -> Column {
        Column {
            name: name.to_owned(),
            column_type,
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("account"), "\"account\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            qualified("salesforce", "invoice__c"),
            "\"salesforce\".\"invoice__c\""
        );
    }

    /// Objects' syncs starting together each create their org's schema: every one of them
    /// succeeds, whichever wins the race in the catalog.
    #[tokio::test]
    async fn a_schema_created_by_many_at_once_is_created_once_without_an_error() {
        let db = TestDatabase::create().await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(db.connect().await);
        }
        for round in 0..20 {
            let schema = format!("org_{round}");
            // Half of them in a transaction of their own, as the describe step asks.
            let creating = clients.iter().enumerate().map(|(n, client)| {
                let schema = schema.clone();
                async move {
                    if n % 2 == 0 {
                        return create_schema(client, &schema).await;
                    }
                    client.batch_execute("BEGIN").await?;
                    create_schema(client, &schema).await?;
                    client.batch_execute("COMMIT").await
                }
            });
            for created in futures::future::join_all(creating).await {
                created.unwrap();
            }
        }
        // A transaction left holding the lock (a worker paused mid-describe, its orgs taken
        // over): a schema that exists is not waited for.
        let paused = &clients[0];
        paused.batch_execute("BEGIN").await.unwrap();
        paused
            .execute(
                "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
                &[&SCHEMA_LOCK_CLASS, &schema_lock_key("org_0")],
            )
            .await
            .unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            create_schema(&clients[1], "org_0"),
        )
        .await
        .expect("an existing schema waited on the lock")
        .unwrap();
        paused.batch_execute("ROLLBACK").await.unwrap();
    }

    /// A table just filled, never analyzed: the newest stamp still comes from one index
    /// entry, not from a pass over every row.
    #[tokio::test]
    async fn the_newest_stamp_is_read_off_the_index_of_an_unanalyzed_table() {
        let db = TestDatabase::create().await;
        let client = db.connect().await;
        create_schema(&client, "salesforce").await.unwrap();
        let columns = [
            col("sfid", ColumnType::Varchar(18)),
            col("systemmodstamp", ColumnType::TimestampTz),
        ];
        create_table(&client, "salesforce", "account", &columns)
            .await
            .unwrap();
        assert_eq!(
            newest_modstamp(&client, "salesforce", "account")
                .await
                .unwrap(),
            None
        );
        client
            .batch_execute(
                "ALTER TABLE salesforce.account SET (autovacuum_enabled = false);
                 INSERT INTO salesforce.account (sfid, systemmodstamp)
                 SELECT 'a' || g, timestamptz '2026-01-01' + g * interval '1 second'
                   FROM generate_series(1, 20000) g;
                 INSERT INTO salesforce.account (sfid, systemmodstamp) VALUES ('null', NULL);",
            )
            .await
            .unwrap();
        let newest = newest_modstamp(&client, "salesforce", "account")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(newest.to_rfc3339(), "2026-01-01T05:33:20+00:00");
        let plan: serde_json::Value = client
            .query_one(
                &format!(
                    "EXPLAIN (ANALYZE, FORMAT JSON) {}",
                    newest_modstamp_sql("salesforce", "account")
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        // The index, read from its end, one row.
        let scan = &plan[0]["Plan"]["Plans"][0];
        assert_eq!(scan["Index Name"], "account_systemmodstamp_idx", "{plan}");
        assert_eq!(scan["Scan Direction"], "Backward", "{plan}");
        assert_eq!(scan["Actual Rows"], 1, "{plan}");
    }

    #[tokio::test]
    async fn creates_a_heroku_connect_style_table_and_evolves_it() {
        let db = TestDatabase::create().await;
        let client = db.connect().await;
        create_schema(&client, "salesforce").await.unwrap();
        let columns = [
            col("sfid", ColumnType::Varchar(18)),
            col("systemmodstamp", ColumnType::TimestampTz),
            col("name", ColumnType::Varchar(255)),
            col(
                "amount__c",
                ColumnType::Numeric {
                    precision: 16,
                    scale: 2,
                },
            ),
        ];
        create_table(&client, "salesforce", "invoice__c", &columns)
            .await
            .unwrap();
        // Idempotent: a restart re-runs it.
        create_table(&client, "salesforce", "invoice__c", &columns)
            .await
            .unwrap();

        let got = existing_columns(&client, "salesforce", "invoice__c")
            .await
            .unwrap();
        let expected = [
            ("id", "bigint"),
            ("sfid", "character varying(18)"),
            ("systemmodstamp", "timestamp with time zone"),
            ("isdeleted", "boolean"),
            ("name", "character varying(255)"),
            ("amount__c", "numeric(16,2)"),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, expected);

        add_column(
            &client,
            "salesforce",
            "invoice__c",
            &col("due__c", ColumnType::Date),
        )
        .await
        .unwrap();
        widen_column(
            &client,
            "salesforce",
            "invoice__c",
            &col("name", ColumnType::Text),
        )
        .await
        .unwrap();
        let got = existing_columns(&client, "salesforce", "invoice__c")
            .await
            .unwrap();
        assert!(got.contains(&("due__c".to_owned(), "date".to_owned())));
        assert!(got.contains(&("name".to_owned(), "text".to_owned())));

        // Without the control schema there is no provisional default: sfid is unique, and
        // NULL is allowed.
        client
            .batch_execute(
                "INSERT INTO salesforce.invoice__c (sfid) VALUES ('a01000000000001AAA'), (NULL), (NULL)",
            )
            .await
            .unwrap();
        let duplicate = client
            .batch_execute("INSERT INTO salesforce.invoice__c (sfid) VALUES ('a01000000000001AAA')")
            .await
            .unwrap_err();
        assert_eq!(
            duplicate.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        );
    }

    #[test]
    fn provisional_sfids_are_never_salesforce_ids() {
        assert!(is_provisional_sfid("~00000000000000042"));
        assert!(!is_provisional_sfid("001000000000001AAA"));
        assert!(!is_provisional_sfid("~0000000000000004"));
        assert!(!is_provisional_sfid("~0000000000000004x"));
    }

    #[tokio::test]
    async fn sfid_defaults_to_a_provisional_value_on_new_and_existing_tables() {
        let db = TestDatabase::create().await;
        let mut client = db.connect().await;
        create_schema(&client, "salesforce").await.unwrap();
        let columns = [col("name", ColumnType::Text)];
        // A table from before the control schema had the default.
        create_table(&client, "salesforce", "account", &columns)
            .await
            .unwrap();
        crate::apply_control_schema(&mut client).await.unwrap();
        create_table(&client, "salesforce", "account", &columns)
            .await
            .unwrap();
        create_table(&client, "salesforce", "contact", &columns)
            .await
            .unwrap();
        for table in ["account", "contact"] {
            let sfid: String = client
                .query_one(
                    &format!("INSERT INTO salesforce.{table} (name) VALUES ('x') RETURNING sfid"),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert!(is_provisional_sfid(&sfid), "{sfid}");
        }
        // Values are unique across tables and sessions.
        let other = db.connect().await;
        let a: String = other
            .query_one("SELECT sfpg.provisional_sfid()::text", &[])
            .await
            .unwrap()
            .get(0);
        let b: String = client
            .query_one("SELECT sfpg.provisional_sfid()::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_ne!(a, b);
        // The sync writes real Ids, which the default never touches.
        client
            .batch_execute(
                "INSERT INTO salesforce.account (sfid, name) VALUES ('001000000000001AAA', 'y')",
            )
            .await
            .unwrap();
        // Ensuring the table again leaves the default as it is.
        create_table(&client, "salesforce", "account", &columns)
            .await
            .unwrap();
    }
}
