//! Change Data Capture: the org's change events applied to the mirror as Salesforce
//! committed them. Events are grouped by transaction ([`transactions`]), turned into the
//! mirror writer's records ([`change`]) and applied with the replay id in one PostgreSQL
//! transaction ([`apply`]).

pub mod apply;
pub mod change;
pub mod health;
pub mod run;
mod session;
pub mod transactions;
pub mod transport;

pub use apply::{BatchApplied, Plans, apply_batch};
pub use change::{Change, ChangeKind, is_echo};
pub use health::StreamHealth;
pub use run::OrgStream;
pub use session::Ended;
pub use transactions::{Transaction, TransactionBuffer};
pub use transport::{Chosen, Transports};

#[cfg(test)]
mod tests;
