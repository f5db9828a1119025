//! The OAuth 2.0 JWT bearer flow (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
//!
//! The client proves itself with an RS256-signed assertion instead of a secret: `iss` is the
//! consumer key, `sub` the username, `aud` the authorization server and `exp` a few minutes
//! ahead. Salesforce issues no refresh token; re-authenticating signs a new assertion.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use crate::error::{Error, Result};

/// How long a signed assertion is valid. Salesforce allows a few minutes of clock skew;
/// three minutes is what simple-salesforce uses.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

/// Credentials for the JWT bearer flow.
#[derive(Debug, Clone)]
pub struct JwtBearer {
    client_id: String,
    username: String,
    private_key_pem: SecretString,
    audience: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

impl JwtBearer {
    /// `private_key_pem` is the RSA private key (PKCS#1 or PKCS#8 PEM) whose certificate is
    /// uploaded to the connected app. The key is checked here, so a bad one fails at start-up.
    pub fn new(
        client_id: impl Into<String>,
        username: impl Into<String>,
        private_key_pem: impl Into<SecretString>,
    ) -> Result<Self> {
        let private_key_pem = private_key_pem.into();
        Self::check_private_key(&private_key_pem)?;
        Ok(Self {
            client_id: client_id.into(),
            username: username.into(),
            private_key_pem,
            audience: None,
        })
    }

    /// Checks that `private_key_pem` is an RSA private key in PEM, as [`JwtBearer::new`] needs.
    /// The error never shows the key.
    pub fn check_private_key(private_key_pem: &SecretString) -> Result<()> {
        EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())
            .map(|_| ())
            .map_err(|e| {
                Error::Config(format!(
                    "the JWT bearer private key is not an RSA private key in PEM ({e})"
                ))
            })
    }

    /// Sets the `aud` claim. By default it follows the login URL: `https://test.salesforce.com`
    /// for sandboxes, `https://login.salesforce.com` for other `*.salesforce.com` hosts
    /// (Salesforce expects these even when the token is requested from a My Domain), and the
    /// login URL itself elsewhere (an Experience Cloud site, the emulator).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The user the token is issued for.
    pub fn username(&self) -> &str {
        &self.username
    }

    pub(super) fn form(&self, login_url: &Url) -> Result<Vec<(&'static str, String)>> {
        let audience = self
            .audience
            .clone()
            .unwrap_or_else(|| default_audience(login_url));
        let exp = (SystemTime::now() + ASSERTION_LIFETIME)
            .duration_since(UNIX_EPOCH)
            .map_err(|e| Error::Config(format!("system clock is before 1970: {e}")))?
            .as_secs();
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.username,
            aud: &audience,
            exp,
        };
        let key = EncodingKey::from_rsa_pem(self.private_key_pem.expose_secret().as_bytes())
            .map_err(|e| Error::Config(format!("JWT bearer private key: {e}")))?;
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
            .map_err(|e| Error::Config(format!("cannot sign the JWT bearer assertion: {e}")))?;
        Ok(vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
        ])
    }
}

fn default_audience(login_url: &Url) -> String {
    let host = login_url
        .host_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com".to_owned()
    } else if host == "salesforce.com" || host.ends_with(".salesforce.com") {
        "https://login.salesforce.com".to_owned()
    } else {
        login_url.origin().ascii_serialization()
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use serde::Deserialize;

    use super::*;

    const PRIVATE_KEY: &str = include_str!("../../tests/fixtures/jwt_private_key.pem");
    const PUBLIC_KEY: &str = include_str!("../../tests/fixtures/jwt_public_key.pem");

    #[derive(Deserialize)]
    struct Decoded {
        iss: String,
        sub: String,
        aud: String,
        exp: u64,
    }

    fn decode(form: &[(&str, String)], audience: &str) -> Decoded {
        assert_eq!(
            form[0],
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned()
            )
        );
        assert_eq!(form[1].0, "assertion");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[audience]);
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
        jsonwebtoken::decode::<Decoded>(&form[1].1, &key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn signs_an_rs256_assertion_with_the_documented_claims() {
        let flow = JwtBearer::new("consumer-key", "ann@example.com", PRIVATE_KEY).unwrap();
        let login = Url::parse("https://login.salesforce.com").unwrap();
        let claims = decode(&flow.form(&login).unwrap(), "https://login.salesforce.com");
        assert_eq!(claims.iss, "consumer-key");
        assert_eq!(claims.sub, "ann@example.com");
        assert_eq!(claims.aud, "https://login.salesforce.com");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            (now + 170..=now + 190).contains(&claims.exp),
            "exp {} now {now}",
            claims.exp
        );
    }

    #[test]
    fn audience_follows_the_login_url() {
        for (login, audience) in [
            ("https://test.salesforce.com", "https://test.salesforce.com"),
            (
                "https://acme--dev.sandbox.my.salesforce.com",
                "https://test.salesforce.com",
            ),
            (
                "https://acme.my.salesforce.com",
                "https://login.salesforce.com",
            ),
            ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ] {
            assert_eq!(
                default_audience(&Url::parse(login).unwrap()),
                audience,
                "{login}"
            );
        }
        let flow = JwtBearer::new("k", "u", PRIVATE_KEY)
            .unwrap()
            .with_audience("https://acme.my.site.com/customers");
        let login = Url::parse("https://login.salesforce.com").unwrap();
        let claims = decode(
            &flow.form(&login).unwrap(),
            "https://acme.my.site.com/customers",
        );
        assert_eq!(claims.aud, "https://acme.my.site.com/customers");
    }

    #[test]
    fn a_bad_key_fails_early_without_echoing_it() {
        let error = JwtBearer::new(
            "k",
            "u",
            "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----",
        )
        .unwrap_err();
        assert!(matches!(error, Error::Config(_)));
        assert!(!error.to_string().contains("not a key"), "{error}");
    }

    #[test]
    fn debug_hides_the_key() {
        let flow = JwtBearer::new("k", "u", PRIVATE_KEY).unwrap();
        let debug = format!("{flow:?}");
        assert!(
            !debug.contains("PRIVATE KEY") && !debug.contains("MII"),
            "{debug}"
        );
    }
}
