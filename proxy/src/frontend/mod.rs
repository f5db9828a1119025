//! The client side: which connections are taken on, how one opens (encryption
//! negotiation, cancel requests), the cancel keys the proxy issues, how a client is
//! refused, and the session: the relay that does its I/O ([`relay`]) and the conversation
//! state machine that decides what the proxy adds to it ([`conversation`]).

pub mod admission;
pub mod cancel;
pub mod conversation;
pub mod refusal;
pub mod relay;
pub mod replies;
pub mod startup;
pub mod tls;
