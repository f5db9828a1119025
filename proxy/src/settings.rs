//! Names shared with the capture triggers of the schema crate.

pub use sfpg_schema::capture::{
    FIRST_PENDING_SQL, ORIGIN_PROXY, ORIGIN_SETTING, SET_SYNC_ORIGIN_SQL,
    SET_SYNC_ORIGIN_WITH_KEY_SQL, TAKE_PENDING_SQL,
};
