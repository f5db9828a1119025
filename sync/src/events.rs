//! Platform events into the mirror: one subscription per enabled event object of an org
//! (`/event/Order_Event__e`), beside its Change Data Capture stream and through the same
//! transport, each event inserted into the object's append-only table exactly once, with
//! its topic's replay id, and announced with `NOTIFY` (the SQL is
//! [`sfpg_control::events`]); rows older than `--event-table-retention` deleted.

mod reader;
mod run;
mod table;

pub use run::EventStreams;
pub use table::{event_fields, event_table_columns};
