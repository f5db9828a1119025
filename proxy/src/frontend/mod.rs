//! The client side: which connections are taken on, how one opens (encryption
//! negotiation, cancel requests), the cancel keys the proxy issues, the session that relays
//! it, and how a client is refused.

pub mod admission;
pub mod cancel;
pub mod refusal;
pub mod replies;
pub mod session;
pub mod startup;
pub mod tls;
