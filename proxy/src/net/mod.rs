//! The wire: client streams (plain or TLS), frame boundaries, and the messages the proxy
//! decodes or writes.

pub mod frame;
pub mod messages;
pub mod stream;
