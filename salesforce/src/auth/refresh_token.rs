//! The OAuth 2.0 refresh-token flow (`grant_type=refresh_token`).
//!
//! When the connected app rotates refresh tokens, each answer carries a new one and the old
//! one stops working; the client then keeps the new one for the next re-authentication, and
//! saves it to its [`super::RefreshTokenStore`] if it has one.

use secrecy::{ExposeSecret, SecretString};

/// Credentials for the refresh-token flow.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    client_id: String,
    client_secret: Option<SecretString>,
    refresh_token: SecretString,
}

impl RefreshToken {
    /// A refresh token issued to the connected app `client_id`.
    pub fn new(client_id: impl Into<String>, refresh_token: impl Into<SecretString>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            refresh_token: refresh_token.into(),
        }
    }

    /// Sends the consumer secret too, for apps configured to require it.
    pub fn with_client_secret(mut self, client_secret: impl Into<SecretString>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// The refresh token in use.
    pub(super) fn refresh_token(&self) -> &SecretString {
        &self.refresh_token
    }

    /// Replaces the refresh token after Salesforce rotated it.
    pub(super) fn rotate(&mut self, refresh_token: SecretString) {
        self.refresh_token = refresh_token;
    }

    pub(super) fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            (
                "refresh_token",
                self.refresh_token.expose_secret().to_owned(),
            ),
            ("client_id", self.client_id.clone()),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose_secret().to_owned()));
        }
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_with_and_without_secret() {
        let flow = RefreshToken::new("cid", "rt-1".to_owned());
        assert_eq!(
            flow.form(),
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", "rt-1".to_owned()),
                ("client_id", "cid".to_owned()),
            ]
        );
        let mut flow = flow.with_client_secret("csecret".to_owned());
        assert_eq!(
            flow.form().last(),
            Some(&("client_secret", "csecret".to_owned()))
        );
        flow.rotate("rt-2".to_owned().into());
        assert_eq!(flow.form()[1], ("refresh_token", "rt-2".to_owned()));
        let debug = format!("{flow:?}");
        assert!(
            !debug.contains("rt-2") && !debug.contains("csecret"),
            "{debug}"
        );
    }
}
