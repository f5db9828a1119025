//! Names shared with the capture triggers of the schema crate.

pub use sfpg_schema::capture::{ORIGIN_PROXY, ORIGIN_SETTING, ORIGIN_SYNC, TAKE_PENDING_SQL};
