//! The header row of a query job's page, checked against the fields asked for before any
//! row is written, so that a page whose columns came in another order can never land in
//! the wrong columns.

use crate::error::ControlError;
use crate::plan::{MirroredField, ObjectPlan};

/// The fields a page must name, in order.
pub(super) struct HeaderCheck<'a> {
    object: &'a str,
    fields: &'a [&'a MirroredField],
}

impl<'a> HeaderCheck<'a> {
    pub(super) fn new(plan: &'a ObjectPlan, fields: &'a [&'a MirroredField]) -> Self {
        Self {
            object: &plan.object,
            fields,
        }
    }

    /// The header row's names (unquoted; the first may carry a byte-order mark) must be
    /// the fields asked for, in order, in any case.
    pub(super) fn check(&self, names: &[String]) -> Result<(), ControlError> {
        let names: Vec<&str> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if i == 0 {
                    n.trim_start_matches('\u{feff}')
                } else {
                    n
                }
            })
            .collect();
        let same = names.len() == self.fields.len()
            && names
                .iter()
                .zip(self.fields)
                .all(|(name, field)| name.eq_ignore_ascii_case(&field.field));
        if same {
            Ok(())
        } else {
            Err(self.mismatch(&format!("the columns {}", names.join(", "))))
        }
    }

    /// A record longer than the longest taken, at `limit` bytes.
    pub(super) fn record_too_long(&self, limit: usize) -> ControlError {
        self.mismatch(&format!("a record longer than {} MiB", limit >> 20))
    }

    fn mismatch(&self, found: &str) -> ControlError {
        let expected: Vec<&str> = self.fields.iter().map(|f| f.field.as_str()).collect();
        ControlError::CsvColumns {
            object: self.object.to_owned(),
            expected: expected.join(", "),
            found: found.to_owned(),
        }
    }
}
