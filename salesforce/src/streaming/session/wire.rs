//! How a subscription sends its Bayeux requests through the client's request path, with
//! its cookies, and what a failed request means for it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Session, Trouble};
use crate::client::{ApiRequest, Client, Target};
use crate::error::{Endpoint, Error, ErrorClass};
use crate::streaming::bayeux::{self, Message};
use crate::streaming::cookies::CookieJar;

/// How a Bayeux request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A handshake or subscribe: through the rate limiter, with the request timeout.
    Counted,
    /// A connect: not counted, no read timeout, bounded by the stall watchdog.
    LongPoll,
}

/// The CometD endpoint, for errors.
pub(super) fn endpoint(client: &Client) -> Endpoint {
    Endpoint {
        method: Method::POST,
        path: format!("/cometd/{}", client.config().api_version().as_str()),
    }
}

fn request(body: &Value, cookies: &CookieJar) -> crate::Result<ApiRequest> {
    let mut request = ApiRequest::new(Method::POST, Target::CometD).json(body)?;
    if let Some(cookie) = cookies.header() {
        request = request.header("cookie", cookie);
    }
    Ok(request)
}

/// Sends `/meta/disconnect` for `client_id`, best effort: an error or a timeout is logged.
pub(super) async fn disconnect(
    client: &Client,
    client_id: &str,
    cookies: &CookieJar,
    timeout: Duration,
) {
    let request = match request(&bayeux::disconnect(0, client_id), cookies) {
        Ok(request) => request.uncounted().timeout(timeout),
        Err(error) => {
            tracing::debug!(%error, "cannot build a disconnect");
            return;
        }
    };
    match tokio::time::timeout(timeout, client.execute(request)).await {
        Ok(Ok(_)) => tracing::debug!(client_id, "disconnected"),
        Ok(Err(error)) => tracing::debug!(client_id, %error, "disconnect failed"),
        Err(_) => tracing::debug!(client_id, "disconnect timed out"),
    }
}

impl Session {
    pub(super) fn endpoint(&self) -> Endpoint {
        endpoint(&self.client)
    }

    /// Sends one Bayeux request and reads its answer, keeping the cookies it sets.
    pub(super) async fn send(&mut self, body: Value, kind: Kind) -> Result<Vec<Message>, Trouble> {
        let mut request = request(&body, &self.cookies).map_err(Trouble::Fatal)?;
        if kind == Kind::LongPoll {
            // The watchdog fires first; this only bounds a request nobody waits for.
            let deadline = self.options.stall_timeout + Duration::from_secs(30);
            request = request.uncounted().long_poll().timeout(deadline);
        }
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|error| self.failed(error))?;
        self.cookies.store(&response.headers);
        bayeux::parse(&response.body).map_err(|source| {
            Trouble::Handshake(format!(
                "{}: the answer did not parse: {source}",
                self.endpoint()
            ))
        })
    }

    /// What a request that failed at the HTTP level means.
    fn failed(&self, error: Error) -> Trouble {
        let text = error.to_string();
        if error.status() == Some(StatusCode::BAD_REQUEST)
            && text.to_ascii_lowercase().contains("replayid")
        {
            return Trouble::Fatal(Error::ReplayIdInvalid {
                channel: self.channel.clone(),
                replay_id: self.resume_point().cometd_value(),
                message: text,
            });
        }
        match error.status().map(|status| status.as_u16()) {
            Some(401) => Trouble::Login(text),
            Some(403) => Trouble::Handshake(text),
            _ if matches!(error, Error::Auth { .. }) => Trouble::Fatal(error),
            _ if error.class() == ErrorClass::Retryable => Trouble::Handshake(text),
            _ => Trouble::Fatal(error),
        }
    }

    /// Sends `/meta/disconnect` for `client_id`, best effort.
    pub(super) async fn disconnect(&self, client_id: &str, cookies: &CookieJar) {
        disconnect(
            &self.client,
            client_id,
            cookies,
            self.options.disconnect_timeout,
        )
        .await;
    }
}
