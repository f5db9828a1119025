//! Binding a parsed query to the org's object definitions: names resolved to field
//! positions, literals typed for their fields, and every error Salesforce reports at
//! this stage (unknown objects, fields and relationships; literals of the wrong type;
//! operators the field's type does not allow; fields that cannot be filtered or sorted).

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::access::Catalog;
use super::ast::{CompareOp, Condition, FieldPath, Literal, LiteralKind, Query, SelectItem};
use super::error::{ErrorCode, SoqlError};
use super::eval::{FieldRef, Filter, LikePattern, Operand, fold};
use super::id;
use super::literal::{self, relative_range};
use super::plan::{Plan, SortKey};
use super::render::Projection;
use crate::model::{FieldDef, FieldType, ObjectDef};

/// How a query runs: the clock relative dates are read against, and whether records in
/// the recycle bin are visible (`queryAll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryOptions {
    pub now: DateTime<Utc>,
    pub include_deleted: bool,
}

/// The largest `OFFSET` Salesforce accepts.
pub const MAX_OFFSET: u64 = 2000;

const WSDL_HINT: &str =
    "Please reference your WSDL or the describe call for the appropriate names.";

/// Binds `query` to the objects of `catalog`.
pub fn bind<C: Catalog + ?Sized>(
    query: &Query,
    catalog: &C,
    options: &QueryOptions,
) -> Result<Plan, SoqlError> {
    Binder {
        query,
        catalog,
        options,
    }
    .plan()
}

struct Binder<'a, C: ?Sized> {
    query: &'a Query,
    catalog: &'a C,
    options: &'a QueryOptions,
}

/// A path resolved to a field: the lookups to follow and the field at the end.
struct Resolved<'c> {
    hops: Vec<(usize, String)>,
    index: usize,
    def: &'c FieldDef,
}

impl Resolved<'_> {
    fn field_ref(&self) -> FieldRef {
        FieldRef {
            hops: self.hops.iter().map(|(i, _)| *i).collect(),
            field: self.index,
            field_type: self.def.field_type,
        }
    }
}

impl<'a, C: Catalog + ?Sized> Binder<'a, C> {
    fn error(&self, code: ErrorCode, offset: usize, reason: &str) -> SoqlError {
        SoqlError::at(code, &self.query.text, offset, reason)
    }

    fn plan(&self) -> Result<Plan, SoqlError> {
        let root = self
            .catalog
            .object(&self.query.from)
            .filter(|o| o.queryable)
            .ok_or_else(|| {
                self.error(
                    ErrorCode::InvalidType,
                    self.query.from_offset,
                    &format!(
                        "sObject type '{}' is not supported. If you are attempting to use a \
                         custom object, be sure to append the '__c' after the entity name. \
                         {WSDL_HINT}",
                        self.query.from
                    ),
                )
            })?;

        let (projection, count) = self.projection(root)?;
        let filter = match &self.query.filter {
            Some(condition) => Some(self.condition(root, condition)?),
            None => None,
        };

        let order = self.order(root)?;
        let offset = self.query.offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(SoqlError::plain(
                ErrorCode::NumberOutsideValidRange,
                format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
            ));
        }

        Ok(Plan::new(
            root,
            count,
            projection,
            filter,
            order,
            self.query.limit,
            offset,
            self.options.include_deleted,
        ))
    }

    /// The selected fields (each once), and whether `COUNT()` is selected.
    fn projection(&self, root: &ObjectDef) -> Result<(Projection, bool), SoqlError> {
        let mut projection = Projection::default();
        let mut count = false;
        let mut seen = HashSet::new();
        for item in &self.query.select {
            match item {
                SelectItem::Count { .. } => count = true,
                SelectItem::Field(path) => {
                    let resolved = self.resolve(root, path)?;
                    let key: (Vec<usize>, usize) =
                        (resolved.hops.iter().map(|h| h.0).collect(), resolved.index);
                    if !seen.insert(key) {
                        return Err(SoqlError::plain(
                            ErrorCode::InvalidField,
                            format!("duplicate field selected: {}", path.dotted()),
                        ));
                    }
                    projection.add(&resolved.hops, resolved.index, &resolved.def.name);
                }
            }
        }
        Ok((projection, count))
    }

    /// The sort keys of `ORDER BY`: sortable, non-compound fields.
    fn order(&self, root: &ObjectDef) -> Result<Vec<SortKey>, SoqlError> {
        let mut order = Vec::with_capacity(self.query.order_by.len());
        for item in &self.query.order_by {
            let resolved = self.resolve(root, &item.field)?;
            if !resolved.def.sortable || resolved.def.field_type.is_compound() {
                return Err(self.error(
                    ErrorCode::InvalidField,
                    item.field.offset,
                    &format!(
                        "field '{}' can not be sorted in a query call",
                        resolved.def.name
                    ),
                ));
            }
            order.push(SortKey {
                field: resolved.field_ref(),
                descending: item.descending,
                nulls_first: item.nulls_first(),
            });
        }
        Ok(order)
    }

    /// Resolves `Name`, `Account.Name`, `a.Name` (with alias `a`) or `Contact.Name` (the
    /// object's own name as a prefix).
    fn resolve(&self, root: &'a ObjectDef, path: &FieldPath) -> Result<Resolved<'a>, SoqlError>
    where
        C: 'a,
    {
        let mut parts = path.parts.as_slice();
        if let [first, rest @ ..] = parts
            && !rest.is_empty()
        {
            let is_alias = self
                .query
                .alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(first));
            let is_own_name =
                root.name.eq_ignore_ascii_case(first) && root.relationship(first).is_none();
            if is_alias || is_own_name {
                parts = rest;
            }
        }
        let Some((last, lookups)) = parts.split_last() else {
            return Err(self.error(
                ErrorCode::MalformedQuery,
                path.offset,
                "unexpected token: '.'",
            ));
        };
        let mut object = root;
        let mut hops = Vec::with_capacity(lookups.len());
        for name in lookups {
            let hop = object.relationship(name).and_then(|(index, def)| {
                let target = self.catalog.object(def.reference_to.first()?)?;
                Some((index, def.relationship_name.clone()?, target))
            });
            let Some((index, relationship, target)) = hop else {
                return Err(self.error(
                    ErrorCode::InvalidField,
                    path.offset,
                    &format!(
                        "Didn't understand relationship '{name}' in field path. If you are \
                         attempting to use a custom relationship, be sure to append the '__r' \
                         after the custom relationship name. {WSDL_HINT}"
                    ),
                ));
            };
            hops.push((index, relationship));
            object = target;
        }
        let Some((index, def)) = object.field(last) else {
            return Err(self.error(
                ErrorCode::InvalidField,
                path.offset,
                &format!(
                    "No such column '{last}' on entity '{}'. If you are attempting to use a \
                     custom field, be sure to append the '__c' after the custom field name. \
                     {WSDL_HINT}",
                    object.name
                ),
            ));
        };
        Ok(Resolved { hops, index, def })
    }

    fn condition(&self, root: &'a ObjectDef, condition: &Condition) -> Result<Filter, SoqlError>
    where
        C: 'a,
    {
        let all = |terms: &[Condition]| -> Result<Vec<Filter>, SoqlError> {
            terms.iter().map(|t| self.condition(root, t)).collect()
        };
        Ok(match condition {
            Condition::And(terms) => Filter::And(all(terms)?),
            Condition::Or(terms) => Filter::Or(all(terms)?),
            Condition::Not(inner) => Filter::Not(Box::new(self.condition(root, inner)?)),
            Condition::Compare { field, op, value } => {
                let resolved = self.filterable(root, field)?;
                let operand = self.operand(resolved.def, *op, value)?;
                Filter::Compare {
                    field: resolved.field_ref(),
                    op: *op,
                    operand,
                }
            }
            Condition::In {
                field,
                negated,
                values,
            } => {
                let resolved = self.filterable(root, field)?;
                let operands = values
                    .iter()
                    .map(|v| self.operand(resolved.def, CompareOp::Eq, v))
                    .collect::<Result<_, _>>()?;
                Filter::In {
                    field: resolved.field_ref(),
                    negated: *negated,
                    operands,
                }
            }
            Condition::Like { field, pattern } => {
                let resolved = self.filterable(root, field)?;
                if !likeable(resolved.def.field_type) {
                    return Err(self.invalid_operator(field.offset, resolved.def));
                }
                let raw = self.string(resolved.def, pattern)?;
                let chars =
                    literal::like_chars(raw).map_err(|c| self.bad_escape(pattern.offset, c))?;
                Filter::Like {
                    field: resolved.field_ref(),
                    pattern: LikePattern::new(&chars),
                }
            }
            Condition::Includes {
                field,
                excludes,
                values,
            } => {
                let resolved = self.filterable(root, field)?;
                if resolved.def.field_type != FieldType::Multipicklist {
                    return Err(self.error(
                        ErrorCode::InvalidQueryFilterOperator,
                        field.offset,
                        "includes/excludes operator only valid on multipicklist field",
                    ));
                }
                let groups = values
                    .iter()
                    .map(|v| {
                        let text = self.unescaped(resolved.def, v)?;
                        Ok(entries(&text))
                    })
                    .collect::<Result<_, SoqlError>>()?;
                Filter::Includes {
                    field: resolved.field_ref(),
                    excludes: *excludes,
                    groups,
                }
            }
        })
    }

    fn filterable(&self, root: &'a ObjectDef, path: &FieldPath) -> Result<Resolved<'a>, SoqlError>
    where
        C: 'a,
    {
        let resolved = self.resolve(root, path)?;
        if !resolved.def.filterable || resolved.def.field_type.is_compound() {
            return Err(self.error(
                ErrorCode::InvalidField,
                path.offset,
                &format!(
                    "field '{}' can not be filtered in a query call",
                    resolved.def.name
                ),
            ));
        }
        Ok(resolved)
    }

    /// The literal typed for `field`, or the error Salesforce gives for the mismatch.
    fn operand(
        &self,
        field: &FieldDef,
        op: CompareOp,
        value: &Literal,
    ) -> Result<Operand, SoqlError> {
        if value.kind == LiteralKind::Null {
            return Ok(Operand::Null);
        }
        let ordered = !matches!(op, CompareOp::Eq | CompareOp::Ne);
        match field.field_type {
            FieldType::Id | FieldType::Reference => self.id_operand(field, value),
            FieldType::Multipicklist => {
                if ordered {
                    return Err(self.invalid_operator(value.offset, field));
                }
                let text = self.unescaped(field, value)?;
                let mut entries = entries(&text).into_vec();
                entries.sort();
                Ok(Operand::Entries(entries.into_boxed_slice()))
            }
            FieldType::Boolean => match value.kind {
                LiteralKind::Bool(b) if !ordered => Ok(Operand::Bool(b)),
                LiteralKind::Bool(_) => Err(self.invalid_operator(value.offset, field)),
                _ => Err(self.mismatch(field, value)),
            },
            FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent => {
                match &value.kind {
                    LiteralKind::Number(text) => literal::number(text)
                        .map(Operand::Number)
                        .ok_or_else(|| self.mismatch(field, value)),
                    _ => Err(self.mismatch(field, value)),
                }
            }
            FieldType::Date => self.date_operand(field, value),
            FieldType::Datetime => self.datetime_operand(field, value),
            FieldType::Time | FieldType::Address | FieldType::Location => {
                Err(self.mismatch(field, value))
            }
            FieldType::String
            | FieldType::Textarea
            | FieldType::Picklist
            | FieldType::Combobox
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url
            | FieldType::Encryptedstring
            | FieldType::Base64
            | FieldType::AnyType => Ok(Operand::Text(fold(&self.unescaped(field, value)?))),
        }
    }

    /// An Id or reference compared with a string: an Id of 15 or 18 characters.
    fn id_operand(&self, field: &FieldDef, value: &Literal) -> Result<Operand, SoqlError> {
        let text = self.unescaped(field, value)?;
        id::canonical(&text)
            .map(|id| Operand::Id(id.into_boxed_str()))
            .ok_or_else(|| {
                self.error(
                    ErrorCode::InvalidQueryFilterOperator,
                    value.offset,
                    &format!("invalid ID field: {text}"),
                )
            })
    }

    /// A date compared with a date literal, or a relative one (`LAST_N_DAYS:7`) as a range
    /// of days.
    fn date_operand(&self, field: &FieldDef, value: &Literal) -> Result<Operand, SoqlError> {
        match &value.kind {
            LiteralKind::Date(text) => literal::date(text).map(Operand::Date).ok_or_else(|| {
                self.error(
                    ErrorCode::MalformedQuery,
                    value.offset,
                    &format!("Invalid date: {text}"),
                )
            }),
            LiteralKind::Relative(relative) => {
                let range = relative_range(*relative, self.options.now.date_naive())
                    .ok_or_else(|| self.mismatch(field, value))?;
                Ok(Operand::Days(range.first, range.end))
            }
            _ => Err(self.mismatch(field, value)),
        }
    }

    /// A datetime compared with a datetime literal, or a relative one as a range of
    /// instants.
    fn datetime_operand(&self, field: &FieldDef, value: &Literal) -> Result<Operand, SoqlError> {
        match &value.kind {
            LiteralKind::DateTime(text) => literal::datetime(text)
                .map(Operand::DateTime)
                .ok_or_else(|| {
                    self.error(
                        ErrorCode::MalformedQuery,
                        value.offset,
                        &format!("Invalid datetime: {text}"),
                    )
                }),
            LiteralKind::Relative(relative) => {
                let range = relative_range(*relative, self.options.now.date_naive())
                    .ok_or_else(|| self.mismatch(field, value))?;
                let (start, end) = range.instants();
                Ok(Operand::Instants(start, end))
            }
            _ => Err(self.mismatch(field, value)),
        }
    }

    /// The raw text of a string literal, or the type-mismatch error.
    fn string<'l>(&self, field: &FieldDef, value: &'l Literal) -> Result<&'l str, SoqlError> {
        match &value.kind {
            LiteralKind::String(raw) => Ok(raw),
            LiteralKind::Null => Err(self.error(
                ErrorCode::MalformedQuery,
                value.offset,
                "unexpected token: 'null'",
            )),
            _ => Err(self.mismatch(field, value)),
        }
    }

    fn unescaped(&self, field: &FieldDef, value: &Literal) -> Result<String, SoqlError> {
        let raw = self.string(field, value)?;
        literal::unescape(raw).map_err(|c| self.bad_escape(value.offset, c))
    }

    fn bad_escape(&self, offset: usize, c: char) -> SoqlError {
        self.error(
            ErrorCode::MalformedQuery,
            offset,
            &format!("Invalid string literal: illegal escape sequence '\\{c}'"),
        )
    }

    /// `value of filter criterion for field 'X' must be of type T and should (not) be
    /// enclosed in quotes`, the message for a literal of the wrong shape.
    fn mismatch(&self, field: &FieldDef, value: &Literal) -> SoqlError {
        let (type_name, quoted) = match field.field_type {
            FieldType::Id | FieldType::Reference => ("id", true),
            FieldType::Boolean => ("boolean", false),
            FieldType::Int => ("int", false),
            FieldType::Double | FieldType::Currency | FieldType::Percent => ("double", false),
            FieldType::Date => ("date", false),
            FieldType::Datetime => ("dateTime", false),
            FieldType::Time => ("time", false),
            FieldType::Address => ("address", false),
            FieldType::Location => ("location", false),
            _ => ("string", true),
        };
        let should = if quoted { "should" } else { "should not" };
        self.error(
            ErrorCode::InvalidField,
            value.offset,
            &format!(
                "value of filter criterion for field '{}' must be of type {type_name} and {should} be enclosed in quotes",
                field.name
            ),
        )
    }

    fn invalid_operator(&self, offset: usize, field: &FieldDef) -> SoqlError {
        let type_name = serde_json::to_value(field.field_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.error(
            ErrorCode::InvalidQueryFilterOperator,
            offset,
            &format!("invalid operator on {type_name} field"),
        )
    }
}

/// Field types `LIKE` applies to: text that is not an Id or a multi-select list.
fn likeable(field_type: FieldType) -> bool {
    field_type.is_text()
        && !matches!(
            field_type,
            FieldType::Id | FieldType::Reference | FieldType::Multipicklist | FieldType::Base64
        )
}

/// The entries of a multi-select value (`'AAA;BBB'`), lower case.
fn entries(text: &str) -> Box<[Box<str>]> {
    text.split(';').map(|e| fold(e.trim())).collect()
}
