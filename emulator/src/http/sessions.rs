//! Access and refresh tokens: who holds which, and until when. Access tokens expire after
//! the configured lifetime, as a session times out on Salesforce; refresh tokens last until
//! revoked (or rotated).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::ids::Id;

/// Whom an access token acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: Id,
    pub username: String,
    pub client_id: String,
    /// Which token of the org this is: 1 for the first issued, then 2, ... (the request
    /// log names sessions by it, never by the token).
    pub serial: u64,
    expires_at: Instant,
}

/// Whom a refresh token may mint access tokens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    pub user_id: Id,
    pub username: String,
    pub client_id: String,
}

#[derive(Debug)]
pub struct Sessions {
    org_id15: String,
    lifetime: Duration,
    access: HashMap<String, Session>,
    refresh: HashMap<String, RefreshGrant>,
    /// Access tokens issued so far.
    issued: u64,
}

impl Sessions {
    /// `org_id` prefixes every access token (its 15-character form), as Salesforce's do.
    pub fn new(org_id: &str, lifetime: Duration) -> Sessions {
        Sessions {
            org_id15: org_id.chars().take(15).collect(),
            lifetime,
            access: HashMap::new(),
            refresh: HashMap::new(),
            issued: 0,
        }
    }

    /// A new access token for the user, valid for the configured lifetime.
    pub fn issue_access(&mut self, user_id: Id, username: &str, client_id: &str) -> String {
        let now = Instant::now();
        self.access.retain(|_, s| s.expires_at > now);
        let token = format!("{}!{}", self.org_id15, random_text(96));
        self.issued += 1;
        self.access.insert(
            token.clone(),
            Session {
                user_id,
                username: username.to_owned(),
                client_id: client_id.to_owned(),
                serial: self.issued,
                expires_at: now + self.lifetime,
            },
        );
        token
    }

    /// A new refresh token for the user and app.
    pub fn issue_refresh(&mut self, user_id: Id, username: &str, client_id: &str) -> String {
        let token = format!("5Aep861{}", random_text(80));
        self.refresh.insert(
            token.clone(),
            RefreshGrant {
                user_id,
                username: username.to_owned(),
                client_id: client_id.to_owned(),
            },
        );
        token
    }

    /// The session behind a live access token.
    pub fn session(&mut self, token: &str) -> Option<Session> {
        let session = self.access.get(token)?;
        if session.expires_at > Instant::now() {
            return Some(session.clone());
        }
        self.access.remove(token);
        None
    }

    /// The grant behind a refresh token, if it belongs to this app.
    pub fn refresh_grant(&self, token: &str, client_id: &str) -> Option<RefreshGrant> {
        self.refresh
            .get(token)
            .filter(|g| g.client_id == client_id)
            .cloned()
    }

    /// Forgets a refresh token (rotation).
    pub fn forget_refresh(&mut self, token: &str) {
        self.refresh.remove(token);
    }

    /// Ends the access tokens of one user (or of everyone), and with `refresh_tokens`
    /// their refresh tokens too. Returns how many tokens were revoked.
    pub fn revoke(&mut self, username: Option<&str>, refresh_tokens: bool) -> usize {
        let matches = |name: &str| username.is_none_or(|u| u.eq_ignore_ascii_case(name));
        let before = self.access.len() + self.refresh.len();
        self.access.retain(|_, s| !matches(&s.username));
        if refresh_tokens {
            self.refresh.retain(|_, g| !matches(&g.username));
        }
        before - self.access.len() - self.refresh.len()
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "00D8d0000000001AAA";

    fn user(n: u8) -> Id {
        Id::parse(&format!("0058d000000000{n}")).unwrap()
    }

    #[test]
    fn access_tokens_carry_the_org_prefix_and_expire() {
        let mut sessions = Sessions::new(ORG, Duration::from_millis(30));
        let token = sessions.issue_access(user(1), "a@b.c", "app");
        assert!(token.starts_with("00D8d0000000001!"));
        assert_eq!(sessions.session(&token).unwrap().username, "a@b.c");
        std::thread::sleep(Duration::from_millis(40));
        assert!(sessions.session(&token).is_none());
    }

    #[test]
    fn revoke_ends_one_users_sessions() {
        let mut sessions = Sessions::new(ORG, Duration::from_secs(60));
        let a = sessions.issue_access(user(1), "a@b.c", "app");
        let b = sessions.issue_access(user(2), "b@b.c", "app");
        let refresh = sessions.issue_refresh(user(1), "a@b.c", "app");
        assert_eq!(sessions.revoke(Some("A@B.C"), false), 1);
        assert!(sessions.session(&a).is_none());
        assert!(sessions.session(&b).is_some());
        assert!(sessions.refresh_grant(&refresh, "app").is_some());
        assert_eq!(sessions.revoke(None, true), 2);
        assert!(sessions.refresh_grant(&refresh, "app").is_none());
    }

    #[test]
    fn refresh_tokens_belong_to_their_app() {
        let mut sessions = Sessions::new(ORG, Duration::from_secs(60));
        let refresh = sessions.issue_refresh(user(1), "a@b.c", "app");
        assert!(sessions.refresh_grant(&refresh, "other").is_none());
        assert_eq!(
            sessions.refresh_grant(&refresh, "app").unwrap().user_id,
            user(1)
        );
        sessions.forget_refresh(&refresh);
        assert!(sessions.refresh_grant(&refresh, "app").is_none());
    }
}
