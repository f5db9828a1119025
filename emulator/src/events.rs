//! The org's event bus for Change Data Capture: typed change events, published inside
//! the org's write (so replay order is commit order), retained for a configurable time,
//! and read by the streaming endpoints. CometD renders them as JSON at its edge; the
//! gRPC Pub/Sub API can serve the same bus. Platform events have their own store
//! ([`PlatformEventStore`]): one log per topic, with its own replay ids.

mod bus;
mod change;
mod platform;
mod selection;

pub use bus::{
    BusConfig, BusError, DEFAULT_MAX_RETAINED, DEFAULT_OVERFLOW_THRESHOLD, DEFAULT_RETENTION,
    EventBus, ReplayStart,
};
pub use change::{
    ChangeEvent, ChangeEventHeader, ChangeType, all_channel, channel_for, event_name,
};
pub use platform::{
    DEFAULT_PLATFORM_MAX_RETAINED, DEFAULT_PLATFORM_RETENTION, PlatformError, PlatformEvent,
    PlatformEventStore, platform_channel, platform_topic,
};
pub use selection::Selection;
