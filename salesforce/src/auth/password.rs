//! The OAuth 2.0 username-password flow (`grant_type=password`).
//!
//! Salesforce issues no refresh token for it, so every re-authentication sends the password
//! again. Where the org requires it, the password is the user's password followed by the
//! user's security token.

use secrecy::{ExposeSecret, SecretString};

/// Credentials for the username-password flow.
#[derive(Debug, Clone)]
pub struct Password {
    client_id: String,
    client_secret: SecretString,
    username: String,
    password: SecretString,
}

impl Password {
    /// `password` is the user's password with the security token appended when the org asks
    /// for one.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user who logs in.
    pub fn username(&self) -> &str {
        &self.username
    }

    pub(super) fn form(&self) -> Vec<(&'static str, String)> {
        vec![
            ("grant_type", "password".to_owned()),
            ("client_id", self.client_id.clone()),
            (
                "client_secret",
                self.client_secret.expose_secret().to_owned(),
            ),
            ("username", self.username.clone()),
            ("password", self.password.expose_secret().to_owned()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields() {
        let flow = Password::new(
            "cid",
            "csecret".to_owned(),
            "ann@example.com",
            "pw+token".to_owned(),
        );
        let form = flow.form();
        assert_eq!(
            form,
            vec![
                ("grant_type", "password".to_owned()),
                ("client_id", "cid".to_owned()),
                ("client_secret", "csecret".to_owned()),
                ("username", "ann@example.com".to_owned()),
                ("password", "pw+token".to_owned()),
            ]
        );
        let debug = format!("{flow:?}");
        assert!(
            !debug.contains("csecret") && !debug.contains("pw+token"),
            "{debug}"
        );
    }
}
