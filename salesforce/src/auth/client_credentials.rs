//! The OAuth 2.0 client-credentials flow (`grant_type=client_credentials`).
//!
//! The connected app acts as its configured integration user. Salesforce accepts this flow
//! only at the org's My Domain URL, not at `login.salesforce.com`.

use secrecy::{ExposeSecret, SecretString};

/// Credentials for the client-credentials flow.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    client_id: String,
    client_secret: SecretString,
}

impl ClientCredentials {
    /// The connected app's consumer key and secret.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<SecretString>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    pub(super) fn form(&self) -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client_id.clone()),
            (
                "client_secret",
                self.client_secret.expose_secret().to_owned(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields() {
        let flow = ClientCredentials::new("cid", "csecret".to_owned());
        assert_eq!(
            flow.form(),
            vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", "cid".to_owned()),
                ("client_secret", "csecret".to_owned()),
            ]
        );
        assert!(!format!("{flow:?}").contains("csecret"));
    }
}
