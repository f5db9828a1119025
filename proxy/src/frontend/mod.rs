//! The client side: how a connection opens (encryption negotiation, cancel requests), the
//! cancel keys the proxy issues, and the session that relays it.

pub mod cancel;
pub mod replies;
pub mod session;
pub mod startup;
pub mod tls;
