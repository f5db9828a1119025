//! DDL for the mirror: one schema per org, one table per object, one column per mirrored
//! field, following Heroku Connect's conventions (local `id bigserial`, `sfid varchar(18)
//! unique`, `systemmodstamp`, `isdeleted`), so that its users can point existing apps at sfpg.

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

/// The columns every mirrored table has, whatever the object's describe says.
pub const BASE_COLUMNS: [&str; 4] = ["id", "sfid", "systemmodstamp", "isdeleted"];

/// A mirrored column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
}

/// Creates the org's schema if it does not exist.
pub async fn create_schema(
    client: &impl GenericClient,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .await
}

/// Creates an object's table with the base columns and `columns` (which may repeat base
/// columns such as `systemmodstamp`; those are skipped). Does nothing if it exists.
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

        // sfid is unique, and NULL is allowed (a row created in an open transaction).
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
            duplicate.as_db_error().map(|e| e.code().code()),
            Some("23505")
        );
    }
}
