//! Names shared with the capture triggers of the control crate.

pub use sfpg_control::capture::{
    CAPTURE_INSTALLED_SQL, FIRST_PENDING_SQL, ORIGIN_PROXY, ORIGIN_SETTING, PUSH_CONTEXT_SQL,
    RESTORE_REFUSED_SQL, SET_SYNC_ORIGIN_SQL, TAKE_PENDING_PAGE_SQL, WRITE_BACK_SQL,
    WRITE_BACK_STAGED_SQL, WRITE_BACK_STAGING_SQL, text_array,
};
pub use sfpg_control::events::EVENT_WRITE_BACK_SQL;
