//! Where a rotated refresh token is kept.
//!
//! A connected app with refresh-token rotation answers every refresh with a new refresh
//! token, and the one just used stops working (reference §1.3). A client that kept the new
//! token only in memory would leave, after a restart, a stored token that Salesforce no
//! longer takes; and two clients of one org (the sync and the proxy, or two processes)
//! would each invalidate the other's. So a client given a store saves each rotated token
//! there, and when Salesforce refuses its refresh token, it looks in the store for a newer
//! one before giving up.

use futures::future::BoxFuture;
use secrecy::SecretString;

/// Keeps one org's refresh token where every client of the org finds it.
pub trait RefreshTokenStore: Send + Sync {
    /// Saves `refresh_token`, which Salesforce issued in place of the one in use.
    fn save<'a>(&'a self, refresh_token: &'a SecretString)
    -> BoxFuture<'a, Result<(), StoreError>>;

    /// The refresh token stored now, which another client may have rotated since this one
    /// read it.
    fn load(&self) -> BoxFuture<'_, Result<Option<SecretString>, StoreError>>;
}

/// A store that could not be read or written. Its message never holds a token.
#[derive(Debug, thiserror::Error)]
#[error("refresh token store: {0}")]
pub struct StoreError(pub String);
