//! Write capture on mirrored tables (migration V3): the triggers the sync installs on every
//! table it creates, and what the proxy reads back at commit.
//!
//! Each session says who it is with the setting `sfpg.origin`: the proxy sets `proxy` for
//! its sessions, the sync sets `sync:` and a key only sfpg can read inside its
//! transactions ([`SET_SYNC_ORIGIN_SQL`]). In a proxy session, every
//! row change is recorded in `sfpg.pending_changes` (old and new image, changed columns);
//! a sync change is not recorded; anyone else's write, and any TRUNCATE outside the sync,
//! is refused with an error that names the table and says what to do. A transaction cannot
//! commit while it still holds a captured change: the proxy must first take the changes
//! (with [`TAKE_PENDING_SQL`]) and push them to Salesforce.

use secrecy::SecretString;
use serde::Deserialize;
use tokio_postgres::GenericClient;

use crate::error::ControlError;
use crate::mirror::{qualified, quote_ident};

/// The setting that tells the triggers who is writing.
pub const ORIGIN_SETTING: &str = "sfpg.origin";
/// `sfpg.origin` of a proxy session: changes are captured.
pub const ORIGIN_PROXY: &str = "proxy";
/// Sets the sync origin for the current transaction, on a connection of the control
/// schema's owner (the sync's, the proxy's repair): writes are then what Salesforce already
/// holds, and are not captured. The origin is `sync:` and a key only the owner can read
/// (migration V7), so that no client can claim it. It is never set on a client's
/// connection: the proxy's write-back goes through [`WRITE_BACK_SQL`] instead.
pub const SET_SYNC_ORIGIN_SQL: &str =
    "SELECT pg_catalog.set_config('sfpg.origin', 'sync:' || key, true) FROM sfpg.origin_key";

/// Name of the row trigger that captures changes.
pub const CAPTURE_TRIGGER: &str = "sfpg_capture";
/// Name of the statement trigger that refuses TRUNCATE.
pub const TRUNCATE_TRIGGER: &str = "sfpg_refuse_truncate";

/// Whether write capture is installed in the database the client's connection reaches:
/// one row, `t` or `f`. A proxy in front of a database without it has nothing to push.
pub const CAPTURE_INSTALLED_SQL: &str =
    "SELECT pg_catalog.to_regproc('sfpg.take_pending_changes') IS NOT NULL";

/// The client transaction's id, or NULL when it has none (then it wrote nothing, and
/// captured nothing). Run on the client's connection; every name is qualified, so that no
/// object of the client's stands in for one (migration V8).
pub const CURRENT_TXID_SQL: &str =
    "SELECT pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text";

/// What a push reads first on the client's connection, in one round trip: the
/// transaction's id ([`CURRENT_TXID_SQL`]), the session's `sfpg.bulk_writes` (NULL when
/// never set: whatever `SET`, `SET LOCAL`, `set_config`, `ALTER ROLE … SET` or the
/// connection's options made it, as the server holds it) and the role the transaction
/// runs as, which its bulk failures are kept for (migration V16). `CURRENT_USER` is a
/// keyword, not a name a client's object could stand in for. Last, the first `WITH HOLD`
/// cursor declared in this transaction, if any: the server computes it at COMMIT, after
/// the push, where its failure could no longer undo what Salesforce accepted.
pub const PUSH_CONTEXT_SQL: &str = "SELECT pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text, \
            pg_catalog.current_setting('sfpg.bulk_writes', true), \
            CURRENT_USER::pg_catalog.text, \
            (SELECT c.name FROM pg_catalog.pg_cursors c \
              WHERE c.is_holdable AND c.creation_time >= pg_catalog.now() \
              ORDER BY c.creation_time LIMIT 1)";

/// Puts refused rows of a bulk push back as they were before the transaction: `$1` the
/// push ticket, `$2` and `$3` the table, `$4` a JSON array of `{"id"}` (a refused create,
/// deleted) or `{"id", "row"}` (a refused update or delete, restored to `row`). Uncaptured,
/// as [`WRITE_BACK_SQL`] writes (migration V16).
pub const RESTORE_REFUSED_SQL: &str = "SELECT sfpg.restore_refused($1, $2, $3, $4)";

/// Mints the push ticket of client transaction `$1` (a txid as text), on a connection of
/// the control schema's owner: what [`TAKE_PENDING_SQL`] and [`WRITE_BACK_SQL`] need in that
/// transaction, and in no other (migration V8).
pub const PUSH_TICKET_SQL: &str = "SELECT sfpg.push_ticket($1::pg_catalog.text::pg_catalog.xid8)";

/// Reads and deletes the current transaction's captured changes: one row, one text column
/// holding a JSON array of [`PendingChange`], oldest first. `$1` is the transaction's push
/// ticket ([`PUSH_TICKET_SQL`]): without it, the changes stay, and the transaction cannot
/// commit.
pub const TAKE_PENDING_SQL: &str = "SELECT sfpg.take_pending_changes($1)";

/// As [`TAKE_PENDING_SQL`], the changes of at most `$2` rows (a positive integer, as text)
/// only: every change of each of those rows (by table and local id), oldest first, so that
/// a row's changes never straddle two pages. `$3` and `$4` (table OID and local id, as
/// text, or NULL for the first page) are the last row of the page before: the page starts
/// after it. A page of fewer rows than asked for was the last (migration V21).
pub const TAKE_PENDING_PAGE_SQL: &str = "SELECT sfpg.take_pending_changes($1, \
     $2::pg_catalog.text::pg_catalog.int4, $3::pg_catalog.text::pg_catalog.oid, \
     $4::pg_catalog.text::pg_catalog.int8)";

/// Writes what Salesforce set into mirror rows of the current transaction: `$1` the push
/// ticket, `$2` and `$3` the table's schema and name, `$4` a JSON array of objects with the
/// row's local `id` and the columns to set. It runs as the control schema's owner with the
/// sync origin in force for its own statement only (migration V8).
pub const WRITE_BACK_SQL: &str = "SELECT sfpg.write_back($1, $2, $3, $4)";

/// Creates the staging table of a write-back by `COPY` in the current transaction: `$1` the
/// push ticket, `$2` and `$3` the mirrored table, `$4` the columns to stage, `id` among
/// them, as an array literal ([`text_array`]). Returns the staging table's name, to `COPY
/// … FROM STDIN` into as the client's role and hand to [`WRITE_BACK_STAGED_SQL`]
/// (migration V25).
pub const WRITE_BACK_STAGING_SQL: &str =
    "SELECT sfpg.write_back_staging($1, $2, $3, $4::pg_catalog.text::pg_catalog.text[])";

/// Writes the rows staged in `$4` (the name [`WRITE_BACK_STAGING_SQL`] returned) into the
/// mirrored table `$2`.`$3` under the write-back's version guard, uncaptured, and drops the
/// staging table: `$1` the push ticket. Returns the rows written (migration V25).
pub const WRITE_BACK_STAGED_SQL: &str = "SELECT sfpg.write_back_staged($1, $2, $3, $4)";

/// `items` as a PostgreSQL array literal of text, each element quoted.
pub fn text_array<S: AsRef<str>>(items: &[S]) -> String {
    let mut literal = String::from("{");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in item.as_ref().chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

/// The first change the current transaction captured, as `{"schema": …, "table": …}`, or
/// NULL: what a proxy that cannot take changes names when it refuses the commit.
pub const FIRST_PENDING_SQL: &str = "SELECT sfpg.first_pending_change()";

/// Mints the push ticket of client transaction `txid` ([`PUSH_TICKET_SQL`]), on a
/// connection of the control schema's owner.
pub async fn push_ticket(
    client: &impl GenericClient,
    txid: &str,
) -> Result<SecretString, ControlError> {
    let row = client.query_one(PUSH_TICKET_SQL, &[&txid]).await?;
    Ok(SecretString::from(row.try_get::<_, String>(0)?))
}

/// Replaces the origin key with a new random one, and the trigger functions that check it,
/// in one transaction (on a connection of the control schema's owner). A sync step under
/// way with the old key fails at its next row and is tried again; a push is refused before
/// anything is sent, or, after, repaired from the journal.
pub async fn rotate_origin_key(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client
        .execute("SELECT sfpg.rotate_origin_key()", &[])
        .await
        .map(drop)
}

/// Installs (or replaces) the capture and TRUNCATE triggers on a mirrored table, as
/// `sfpg.install_capture_triggers` defines them (migration V20).
pub async fn install_capture_trigger(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT sfpg.install_capture_triggers($1::pg_catalog.text::pg_catalog.regclass)",
            &[&qualified(schema, table)],
        )
        .await
        .map(drop)
}

/// Removes the triggers, for a table that stops being mirrored but stays.
pub async fn remove_capture_trigger(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<(), tokio_postgres::Error> {
    let table = qualified(schema, table);
    client
        .batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {} ON {table}; DROP TRIGGER IF EXISTS {} ON {table};",
            quote_ident(CAPTURE_TRIGGER),
            quote_ident(TRUNCATE_TRIGGER),
        ))
        .await
}

/// What a captured row change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

/// One captured row change, as [`TAKE_PENDING_SQL`] returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PendingChange {
    /// Capture order within the transaction.
    pub seq: i64,
    #[serde(rename = "schema_name")]
    pub schema: String,
    #[serde(rename = "table_name")]
    pub table: String,
    /// The table's OID, as RowDescription reports it for a column of that table.
    pub table_oid: u32,
    pub operation: Operation,
    /// The row's local `id`.
    pub row_id: Option<i64>,
    /// The row before the change (UPDATE, DELETE), column name to value. Of a row the
    /// transaction only updated, only the columns it changed in the row, `id` and `sfid`
    /// (migration V21); the same holds for `new`.
    #[serde(rename = "old_row")]
    pub old: Option<serde_json::Map<String, serde_json::Value>>,
    /// The row after the change (INSERT, UPDATE).
    #[serde(rename = "new_row")]
    pub new: Option<serde_json::Map<String, serde_json::Value>>,
    /// UPDATE: the columns whose value changed, in column order.
    #[serde(default)]
    pub changed: Option<Vec<String>>,
}

/// Parses the text [`TAKE_PENDING_SQL`] returns.
pub fn parse_pending(json: &str) -> Result<Vec<PendingChange>, serde_json::Error> {
    serde_json::from_str(json)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod write_back_tests;
