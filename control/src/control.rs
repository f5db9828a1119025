//! Reading and writing the control schema's org records. Sync state per object belongs to
//! the sync crate; what lives here is what every process (CLI, sync, proxy) needs of an org.

pub mod admin;
pub mod connect;
pub mod master_key;
pub mod orgs;

pub use master_key::{MasterKey, MasterKeyError};
pub use orgs::{AuthFlow, NewOrg, Org, OrgError, OrgSecrets, RateLimit};
