//! Handles for unit tests of the push: an org `acme` whose client never connects, and
//! text columns of a mirrored object, as the catalog would give them.

use std::sync::Arc;

use sfpg_control::mapping::ColumnType;
use sfpg_salesforce::{ClientCredentials, Config, FieldType, Rate, RateLimiter};

use super::{MirroredColumn, OrgHandle};

/// The org `acme`, mirrored in schema `salesforce`.
pub fn acme() -> Arc<OrgHandle> {
    let client = sfpg_salesforce::Client::new(
        Config::new("https://login.example.com").unwrap(),
        ClientCredentials::new("id", "secret"),
        RateLimiter::new(Rate::per_second(10).unwrap()),
    )
    .unwrap();
    Arc::new(OrgHandle {
        name: "acme".into(),
        schema: "salesforce".into(),
        client,
    })
}

/// A text column mirroring `field`.
pub fn text_column(
    column: &str,
    field: &str,
    createable: bool,
    updateable: bool,
) -> MirroredColumn {
    MirroredColumn {
        column: column.into(),
        field: field.into(),
        field_type: FieldType::default(),
        createable,
        updateable,
        column_type: ColumnType::Text,
    }
}
