//! Names shared with the capture triggers of the control crate.

pub use sfpg_control::capture::{
    CAPTURE_INSTALLED_SQL, CURRENT_TXID_SQL, FIRST_PENDING_SQL, ORIGIN_PROXY, ORIGIN_SETTING,
    SET_SYNC_ORIGIN_SQL, TAKE_PENDING_SQL, WRITE_BACK_SQL,
};
pub use sfpg_control::events::EVENT_WRITE_BACK_SQL;
