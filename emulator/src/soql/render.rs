//! Projection of records into Salesforce's JSON shape: `attributes` first, then the
//! selected fields under their canonical names in `SELECT` order, with fields reached
//! through a lookup nested in an object named after the relationship (`"Account": {...}`)
//! at the place of the first such field, or `null` when the lookup is empty.

use serde_json::{Map, Value as Json, json};

use super::access::RecordAccess;
use crate::model::{ObjectDef, Record};

/// The compiled `SELECT` list of a query. It owns everything it needs, so a query
/// cursor can keep it to render later pages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq)]
enum Column {
    Field {
        index: usize,
        name: String,
    },
    Parent {
        reference: usize,
        relationship: String,
        columns: Vec<Column>,
    },
}

impl Projection {
    /// Adds a selected field reached through `hops` (reference field position and
    /// canonical relationship name, outermost first).
    pub(crate) fn add(&mut self, hops: &[(usize, String)], index: usize, name: &str) {
        let mut columns = &mut self.columns;
        for (reference, relationship) in hops {
            let at = columns
                .iter()
                .position(|c| matches!(c, Column::Parent { reference: r, .. } if r == reference));
            let at = at.unwrap_or_else(|| {
                columns.push(Column::Parent {
                    reference: *reference,
                    relationship: relationship.clone(),
                    columns: Vec::new(),
                });
                columns.len() - 1
            });
            columns = match &mut columns[at] {
                Column::Parent { columns, .. } => columns,
                Column::Field { .. } => return,
            };
        }
        columns.push(Column::Field {
            index,
            name: name.to_string(),
        });
    }

    /// One record as the query API returns it. `api_version` is `62.0` (a leading `v`
    /// is accepted too).
    pub fn render<A: RecordAccess + ?Sized>(
        &self,
        access: &A,
        object: &ObjectDef,
        record: &Record,
        api_version: &str,
    ) -> Json {
        render_columns(&self.columns, access, object, record, version(api_version))
    }
}

fn version(api_version: &str) -> &str {
    api_version.strip_prefix('v').unwrap_or(api_version)
}

/// `{"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001..."}`.
pub fn attributes(object: &ObjectDef, record: &Record, api_version: &str) -> Json {
    let id = record.get(object.system.id).as_str().unwrap_or_default();
    json!({
        "type": object.name,
        "url": format!("/services/data/v{}/sobjects/{}/{}", version(api_version), object.name, id),
    })
}

fn render_columns<A: RecordAccess + ?Sized>(
    columns: &[Column],
    access: &A,
    object: &ObjectDef,
    record: &Record,
    api_version: &str,
) -> Json {
    let mut out = Map::with_capacity(columns.len() + 1);
    out.insert(
        "attributes".to_string(),
        attributes(object, record, api_version),
    );
    for column in columns {
        match column {
            Column::Field { index, name } => {
                out.insert(name.clone(), access.field_json(object, record, *index));
            }
            Column::Parent {
                reference,
                relationship,
                columns,
            } => {
                let parent = match access.parent(object, record, *reference) {
                    Some((parent_object, parent)) => {
                        render_columns(columns, access, parent_object, parent, api_version)
                    }
                    None => Json::Null,
                };
                out.insert(relationship.clone(), parent);
            }
        }
    }
    Json::Object(out)
}
