//! An event object's table: its mirrored fields from describe (`Id` first, the standard
//! fields of every event, then the event's own), created as the control schema's event
//! table, and recorded in `sfpg.objects` as live, so that the proxy knows what the table
//! mirrors and `sfpg status` shows it.

use sfpg_control::events::{STANDARD_COLUMNS, create_event_table};
use sfpg_control::leases::Fence;

use crate::db::Database;
use sfpg_control::mapping::{self, ColumnType, Mapping, SourceField};
use sfpg_control::objects::{ObjectState, Phase};
use sfpg_control::plan::MirroredField;
use sfpg_salesforce::{Client, SObjectDescribe};

use crate::error::{Result, SyncError};

/// The fields an event table mirrors: `Id` (`sfid`), `ReplayId` (`replayid`, a number: the
/// bus's replay id), `EventUuid`, `CreatedDate`, `CreatedById`, then each field of the
/// event that maps to a column, in describe's order.
pub fn event_fields(describe: &SObjectDescribe) -> Result<Vec<MirroredField>> {
    let mut standard: Vec<MirroredField> = Vec::new();
    let mut own = Vec::new();
    for field in &describe.fields {
        let source = SourceField {
            name: &field.name,
            field_type: field.field_type.as_str(),
            length: field.length,
            precision: field.precision,
            scale: field.scale,
        };
        let Mapping::Column(column_type) = mapping::map_field(&source) else {
            continue;
        };
        match STANDARD_COLUMNS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&field.name))
        {
            Some((name, column)) => standard.push(MirroredField {
                field: (*name).to_owned(),
                column: (*column).to_owned(),
                // Replay ids are numbers on the bus, though describe calls the field text.
                column_type: if *name == "ReplayId" {
                    ColumnType::BigInt
                } else {
                    column_type
                },
                calculated: false,
            }),
            None => own.push(MirroredField {
                field: field.name.clone(),
                column: mapping::column_name(&field.name),
                column_type,
                calculated: false,
            }),
        }
    }
    if !standard.iter().any(|f| f.field == "Id") {
        return Err(SyncError::NotMirrorable {
            object: describe.summary.name.clone(),
            reason: "its describe has no Id field".into(),
        });
    }
    standard.sort_by_key(|f| STANDARD_COLUMNS.iter().position(|(n, _)| *n == f.field));
    standard.extend(own);
    Ok(standard)
}

/// The columns the sync writes of a delivered event: every mirrored column but `sfid`.
pub fn event_table_columns(fields: &[MirroredField]) -> Vec<String> {
    fields
        .iter()
        .filter(|f| f.column != "sfid")
        .map(|f| f.column.clone())
        .collect()
}

/// Describes the event object, creates its table and records it in `sfpg.objects` as live.
/// Returns its fields.
pub async fn ensure_event_table(
    db: &mut Database,
    fence: Option<&Fence>,
    client: &Client,
    state: &ObjectState,
    schema: &str,
) -> Result<Vec<MirroredField>> {
    let describe = client.sobject(state.object.clone()).describe().await?;
    let fields = event_fields(&describe)?;
    let columns: Vec<_> = fields.iter().map(MirroredField::as_column).collect();
    let mut saved = state.clone();
    saved.phase = Phase::Live;
    saved.mirrored_fields = fields.clone();
    saved.last_error = None;
    db.write(fence, async |t| {
        create_event_table(t, schema, &state.table, &columns).await?;
        saved.save(t).await
    })
    .await?;
    Ok(fields)
}
