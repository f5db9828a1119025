//! The cookies of one Bayeux client (`BAYEUX_BROWSER`, Salesforce's load-balancer cookies).
//!
//! CometD ties a client to the cookies of its handshake: a request that comes without them
//! may land on another server and get `403::Unknown client`. Each subscription keeps its own
//! jar rather than sharing one in the HTTP client: two Bayeux clients sharing a
//! `BAYEUX_BROWSER` count as one browser with several tabs, which CometD servers slow down
//! (`multiple-clients` advice), and REST calls have no use for them.

use reqwest::header::{HeaderMap, HeaderValue, SET_COOKIE};

/// Cookies by name, in the order first set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// Takes the `Set-Cookie` headers of an answer: new values replace old ones, and a
    /// cookie set to expire (`Max-Age=0`, or an empty value) is dropped.
    pub(crate) fn store(&mut self, headers: &HeaderMap) {
        for header in headers.get_all(SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let mut attributes = text.split(';');
            let Some((name, value)) = attributes.next().and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let expired = value.is_empty()
                || attributes.any(|attribute| {
                    attribute
                        .trim()
                        .to_ascii_lowercase()
                        .strip_prefix("max-age=")
                        .is_some_and(|age| age.trim().starts_with('-') || age.trim() == "0")
                });
            self.cookies.retain(|(kept, _)| kept != name);
            if !expired && !name.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The `Cookie` header to send, if there is any cookie.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        if self.cookies.is_empty() {
            return None;
        }
        let text = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&text).ok()
    }

    /// Forgets every cookie, for a new Bayeux client.
    pub(crate) fn clear(&mut self) {
        self.cookies.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_cookies(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(SET_COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn keeps_replaces_and_expires_cookies() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), None);
        jar.store(&set_cookies(&[
            "BAYEUX_BROWSER=1bvl-abc; Path=/; Secure; HttpOnly",
            "sfdc-stream=!xyz==; Path=/",
        ]));
        assert_eq!(
            jar.header().unwrap(),
            "BAYEUX_BROWSER=1bvl-abc; sfdc-stream=!xyz=="
        );
        jar.store(&set_cookies(&["BAYEUX_BROWSER=2def; Path=/"]));
        assert_eq!(
            jar.header().unwrap(),
            "sfdc-stream=!xyz==; BAYEUX_BROWSER=2def"
        );
        jar.store(&set_cookies(&["sfdc-stream=gone; Max-Age=0"]));
        assert_eq!(jar.header().unwrap(), "BAYEUX_BROWSER=2def");
        jar.clear();
        assert_eq!(jar.header(), None);
    }
}
