//! Projection of records into Salesforce's JSON shape: `attributes` first, then the
//! selected fields under their canonical names in `SELECT` order, with fields reached
//! through a lookup nested in an object named after the relationship (`"Account": {...}`)
//! at the place of the first such field, or `null` when the lookup is empty.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value as Json;

use super::access::RecordAccess;
use crate::model::{JsonField, ObjectDef, Record};

/// The compiled `SELECT` list of a query. It owns everything it needs, so a query
/// cursor can keep it to render later pages.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    columns: Vec<Column>,
    flat: Vec<FlatColumn>,
}

/// One selected field as a column of a flat (CSV) result, in `SELECT` order: Bulk API
/// query results give every field path its own column, where JSON nests the fields of a
/// parent together.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatColumn {
    /// The reference fields to follow, each on the object reached so far.
    pub hops: Vec<usize>,
    /// The field read on the object reached.
    pub field: usize,
    /// `Name`, `Owner.Name`: canonical relationship and field names joined by dots.
    pub header: String,
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
        let mut header = String::new();
        for (_, relationship) in hops {
            header.push_str(relationship);
            header.push('.');
        }
        header.push_str(name);
        self.flat.push(FlatColumn {
            hops: hops.iter().map(|(reference, _)| *reference).collect(),
            field: index,
            header,
        });
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

    /// The selected fields as flat columns, in `SELECT` order.
    pub fn flat(&self) -> &[FlatColumn] {
        &self.flat
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
        serde_json::to_value(self.rendered(access, object, record, api_version))
            .unwrap_or(Json::Null)
    }

    /// The same record as [`Projection::render`] builds, serialized in place: a page of
    /// records goes straight into the response body, without a JSON tree per record.
    pub fn rendered<'a, A: RecordAccess + ?Sized>(
        &'a self,
        access: &'a A,
        object: &'a ObjectDef,
        record: &'a Record,
        api_version: &'a str,
    ) -> Rendered<'a, A> {
        Rendered {
            columns: &self.columns,
            access,
            object,
            record,
            api_version: version(api_version),
        }
    }
}

fn version(api_version: &str) -> &str {
    api_version.strip_prefix('v').unwrap_or(api_version)
}

/// `{"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001..."}`.
pub fn attributes(object: &ObjectDef, record: &Record, api_version: &str) -> Json {
    serde_json::to_value(Attributes {
        object,
        record,
        api_version: version(api_version),
    })
    .unwrap_or(Json::Null)
}

struct Attributes<'a> {
    object: &'a ObjectDef,
    record: &'a Record,
    api_version: &'a str,
}

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let id = self
            .record
            .get(self.object.system.id)
            .as_str()
            .unwrap_or_default();
        let url = format_args!(
            "/services/data/v{}/sobjects/{}/{id}",
            self.api_version, self.object.name
        );
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", &self.object.name)?;
        map.serialize_entry("url", &url)?;
        map.end()
    }
}

/// A record (or, nested, the parent a lookup reaches) under a projection's columns:
/// `attributes` first, then each column in `SELECT` order.
pub struct Rendered<'a, A: ?Sized> {
    columns: &'a [Column],
    access: &'a A,
    object: &'a ObjectDef,
    record: &'a Record,
    api_version: &'a str,
}

impl<A: RecordAccess + ?Sized> Serialize for Rendered<'_, A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len() + 1))?;
        map.serialize_entry(
            "attributes",
            &Attributes {
                object: self.object,
                record: self.record,
                api_version: self.api_version,
            },
        )?;
        for column in self.columns {
            match column {
                Column::Field { index, name } => match self.object.fields.get(*index) {
                    Some(field) if !field.field_type.is_compound() => {
                        let value = self.access.value(self.object, self.record, *index);
                        map.serialize_entry(
                            name,
                            &JsonField {
                                value: &value,
                                field,
                            },
                        )?;
                    }
                    // Addresses and locations are assembled from their components.
                    _ => map.serialize_entry(
                        name,
                        &self.access.field_json(self.object, self.record, *index),
                    )?,
                },
                Column::Parent {
                    reference,
                    relationship,
                    columns,
                } => {
                    let parent = self
                        .access
                        .parent(self.object, self.record, *reference)
                        .map(|(object, record)| Rendered {
                            columns,
                            access: self.access,
                            object,
                            record,
                            api_version: self.api_version,
                        });
                    map.serialize_entry(relationship, &parent)?;
                }
            }
        }
        map.end()
    }
}
