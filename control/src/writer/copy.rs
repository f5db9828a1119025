//! `COPY … FROM STDIN` of new rows: in PostgreSQL's binary format when every value is in
//! Salesforce's layout for its column type ([`super::binary`]), which spares PostgreSQL
//! parsing them, and otherwise as text, for PostgreSQL's input functions to take or refuse.

use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::GenericClient;

use super::Rows;
use super::binary;
use super::sql::column_list;
use super::value::push_copy_text;
use crate::error::ControlError;
use crate::mapping::ColumnType;
use crate::mirror::qualified;
use crate::plan::ObjectPlan;

/// The size of one `CopyData` message: a few hundred kilobytes keeps the socket busy.
const COPY_CHUNK: usize = 256 * 1024;

/// `COPY table (columns) FROM STDIN` for `rows`' fields.
pub(super) fn copy_statement(plan: &ObjectPlan, rows: &Rows<'_>) -> String {
    format!(
        "COPY {} ({}) FROM STDIN",
        qualified(&plan.schema, &plan.table),
        column_list(&rows.fields, "")
    )
}

/// Runs `statement` (a `COPY … FROM STDIN`) with `rows` on `client`'s connection, in the
/// transaction the caller has open there; returns the rows copied.
pub(super) async fn copy_in(
    client: &impl GenericClient,
    statement: &str,
    rows: &Rows<'_>,
) -> Result<u64, ControlError> {
    let types: Vec<ColumnType> = rows.fields.iter().map(|f| f.column_type).collect();
    if let Some(data) = binary::encode(&types, &rows.values) {
        let sink = client
            .client()
            .copy_in(&format!("{statement} (FORMAT binary)"))
            .await?;
        futures::pin_mut!(sink);
        let data = Bytes::from(data);
        for start in (0..data.len()).step_by(COPY_CHUNK) {
            sink.send(data.slice(start..(start + COPY_CHUNK).min(data.len())))
                .await?;
        }
        return Ok(sink.finish().await?);
    }
    let sink = client.client().copy_in(statement).await?;
    futures::pin_mut!(sink);
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    for row in 0..rows.len() {
        for (i, value) in rows.values.row(row).enumerate() {
            if i > 0 {
                buffer.push(b'\t');
            }
            push_copy_text(&mut buffer, value);
        }
        buffer.push(b'\n');
        if buffer.len() >= COPY_CHUNK {
            sink.send(Bytes::from(std::mem::take(&mut buffer))).await?;
        }
    }
    if !buffer.is_empty() {
        sink.send(Bytes::from(buffer)).await?;
    }
    Ok(sink.finish().await?)
}
