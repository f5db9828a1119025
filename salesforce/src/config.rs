//! How to reach an org: where to log in, which API version to speak, which certificate
//! authorities to trust, how long to wait and how to retry.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// A REST API version such as `62.0`, used as `/services/data/v62.0/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiVersion(String);

impl ApiVersion {
    /// The version sfpg is written against (Winter '25, the version reference §2 follows).
    pub const DEFAULT: &str = "62.0";

    /// The version as Salesforce writes it, such as `62.0`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL path segment, such as `v62.0`.
    pub(crate) fn segment(&self) -> String {
        format!("v{}", self.0)
    }
}

impl FromStr for ApiVersion {
    type Err = Error;

    /// Accepts `62.0` or `v62.0`.
    fn from_str(s: &str) -> Result<Self> {
        let version = s.strip_prefix('v').unwrap_or(s);
        let well_formed = version
            .split_once('.')
            .is_some_and(|(major, minor)| is_number(major) && is_number(minor));
        if !well_formed {
            return Err(Error::Config(format!(
                "{s:?} is not an API version such as {}",
                Self::DEFAULT
            )));
        }
        Ok(Self(version.to_owned()))
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl Default for ApiVersion {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything about reaching an org except its credentials.
///
/// ```
/// use std::time::Duration;
/// use sfpg_salesforce::Config;
///
/// let config = Config::new("https://acme.my.salesforce.com")?
///     .with_api_version("62.0".parse()?)
///     .with_request_timeout(Duration::from_secs(60));
/// assert_eq!(config.login_url().as_str(), "https://acme.my.salesforce.com/");
/// # Ok::<(), sfpg_salesforce::Error>(())
/// ```
#[derive(Clone)]
pub struct Config {
    login_url: Url,
    api_version: ApiVersion,
    ca_certificates_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    call_options_client: String,
    org_label: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("login_url", &self.login_url.as_str())
            .field("api_version", &self.api_version.as_str())
            .field(
                "ca_certificates_pem",
                &self
                    .ca_certificates_pem
                    .as_ref()
                    .map(|pem| format!("{} bytes", pem.len())),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("call_options_client", &self.call_options_client)
            .field("org_label", &self.org_label)
            .finish()
    }
}

impl Config {
    /// Production orgs log in here.
    pub const PRODUCTION_LOGIN_URL: &str = "https://login.salesforce.com";
    /// Sandboxes log in here.
    pub const SANDBOX_LOGIN_URL: &str = "https://test.salesforce.com";

    /// Logs in at `login_url`: `https://login.salesforce.com`, `https://test.salesforce.com`
    /// or the org's My Domain URL (required for the client-credentials flow). Only the scheme,
    /// host and port are kept.
    pub fn new(login_url: &str) -> Result<Self> {
        // A user name and password in the URL are dropped with the rest of it: Salesforce
        // never reads them, and an org stored with one before `parse_org_url` refused them
        // keeps working.
        let parsed =
            parse_http_url(login_url).map_err(|e| Error::Config(format!("login URL {e}")))?;
        let origin = Url::parse(&parsed.origin().ascii_serialization())
            .map_err(|e| Error::Config(format!("login URL {:?}: {e}", redact_url(login_url))))?;
        Ok(Self {
            login_url: origin,
            api_version: ApiVersion::default(),
            ca_certificates_pem: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            call_options_client: "sfpg".to_owned(),
            org_label: String::new(),
        })
    }

    /// Uses this API version instead of [`ApiVersion::DEFAULT`].
    pub fn with_api_version(mut self, version: ApiVersion) -> Self {
        self.api_version = version;
        self
    }

    /// Also trusts the certificate authorities in this PEM bundle, on top of the system's:
    /// the emulator's self-signed certificate, or a corporate proxy's CA.
    pub fn with_ca_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificates_pem = Some(pem.into());
        self
    }

    /// How long to wait for a TCP and TLS connection (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one attempt may take, from sending to the last byte of the answer
    /// (default 120 s; Salesforce itself gives up on a REST call after 10 minutes).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How transient failures are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The `client` sent in `Sforce-Call-Options: client=…` on every call (default `sfpg`).
    /// Salesforce reports it in change events' `changeOrigin`, which is how sfpg recognises
    /// its own writes.
    pub fn with_call_options_client(mut self, client: impl Into<String>) -> Self {
        self.call_options_client = client.into();
        self
    }

    /// The org's name in the metrics the client records (label `org`; empty unless set).
    pub fn with_org_label(mut self, org: impl Into<String>) -> Self {
        self.org_label = org.into();
        self
    }

    /// The org's name in the client's metrics.
    pub fn org_label(&self) -> &str {
        &self.org_label
    }

    /// The login URL (scheme, host and port).
    pub fn login_url(&self) -> &Url {
        &self.login_url
    }

    /// The API version.
    pub fn api_version(&self) -> &ApiVersion {
        &self.api_version
    }

    /// The extra trusted certificate authorities, PEM.
    pub fn ca_certificates_pem(&self) -> Option<&[u8]> {
        self.ca_certificates_pem.as_deref()
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The per-attempt request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The `Sforce-Call-Options` client name.
    pub fn call_options_client(&self) -> &str {
        &self.call_options_client
    }
}

/// Checks that `pem` holds at least one certificate that parses, as
/// [`Config::with_ca_certificates_pem`] needs: the client is built from it later, and a
/// bad file is better refused when it is given.
pub fn check_ca_certificates_pem(pem: &[u8]) -> Result<()> {
    crate::client::ca_certificates(pem).map(|_| ())
}

/// Parses an org's login or instance URL as given to register it: an `http(s)://` URL with a
/// host, and without a user name or password (Salesforce's URLs never carry one, and a
/// password there would be shown wherever the URL is). The error names the URL with any
/// user name and password masked.
pub fn parse_org_url(text: &str) -> Result<Url> {
    let url = parse_http_url(text).map_err(Error::Config)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(format!(
            "{:?} holds a user name or password: Salesforce URLs carry none, and the \
             credentials have places of their own",
            redact_url(text)
        )));
    }
    Ok(url)
}

/// `text` as a URL whose scheme is http or https and which has a host; the error (a phrase to
/// follow the URL's role, such as `login URL`) shows `text` through [`redact_url`].
fn parse_http_url(text: &str) -> std::result::Result<Url, String> {
    let shown = redact_url(text);
    let url = Url::parse(text).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{shown:?} is not an http(s) URL with a host, such as https://acme.my.salesforce.com"
        ));
    }
    Ok(url)
}

/// `text` with any user name and password before its host replaced by `***`
/// (`https://***@host`), so that a URL can be shown in output, logs and errors. Works on
/// text that does not parse as a URL too: whatever stands before the last `@` of the part
/// between `://` and the path is masked.
pub fn redact_url(text: &str) -> Cow<'_, str> {
    let start = text.find("://").map_or(0, |i| i + 3);
    let authority_len = text[start..]
        .find(['/', '?', '#'])
        .unwrap_or(text.len() - start);
    match text[start..start + authority_len].rfind('@') {
        Some(at) => Cow::Owned(format!("{}***{}", &text[..start], &text[start + at..])),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_url_keeps_only_the_origin() {
        let config = Config::new("https://acme.my.salesforce.com/some/path?x=1").unwrap();
        assert_eq!(
            config.login_url().as_str(),
            "https://acme.my.salesforce.com/"
        );
        let config = Config::new("http://127.0.0.1:8443").unwrap();
        assert_eq!(config.login_url().as_str(), "http://127.0.0.1:8443/");
        for bad in [
            "login.salesforce.com",
            "ftp://login.salesforce.com",
            "",
            "https://",
        ] {
            assert!(Config::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn org_urls_refuse_credentials_and_never_show_them() {
        let url = parse_org_url("https://acme.my.salesforce.com").unwrap();
        assert_eq!(url.host_str(), Some("acme.my.salesforce.com"));
        for bad in [
            "https://admin:hunter2@acme.my.salesforce.com",
            "https://admin@acme.my.salesforce.com",
            "https://admin:hunter2@acme.my.salesforce.com:99999",
            "https://admin:hunter2@[::1",
            "ftp://admin:hunter2@acme.example",
            "",
            "http://[::1",
            "acme.my.salesforce.com",
        ] {
            let error = parse_org_url(bad).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
            if let Err(error) = Config::new(bad) {
                assert!(!error.to_string().contains("hunter2"), "{error}");
            }
        }
        // An org stored with one still logs in, at the URL without it.
        let config = Config::new("https://admin:hunter2@acme.my.salesforce.com/").unwrap();
        assert_eq!(
            config.login_url().as_str(),
            "https://acme.my.salesforce.com/"
        );
    }

    #[test]
    fn redacted_urls() {
        for (text, shown) in [
            ("https://a:b@host/p?q=@x", "https://***@host/p?q=@x"),
            ("https://a:b@c@host", "https://***@host"),
            ("http://u@[::1", "http://***@[::1"),
            ("u:p@host", "***@host"),
            ("https://host/path@x", "https://host/path@x"),
            ("mailto:x", "mailto:x"),
            ("", ""),
        ] {
            assert_eq!(redact_url(text), shown, "{text}");
        }
    }

    #[test]
    fn api_versions() {
        assert_eq!("62.0".parse::<ApiVersion>().unwrap().segment(), "v62.0");
        assert_eq!("v58.0".parse::<ApiVersion>().unwrap().as_str(), "58.0");
        for bad in ["62", "v", "62.x", "", "6 2.0", "../62.0"] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(ApiVersion::default().as_str(), ApiVersion::DEFAULT);
    }

    #[test]
    fn defaults() {
        let config = Config::new(Config::PRODUCTION_LOGIN_URL).unwrap();
        assert_eq!(config.call_options_client(), "sfpg");
        assert_eq!(config.retry(), &RetryPolicy::default());
        assert!(config.ca_certificates_pem().is_none());
    }
}
