//! A response as the request path hands it over: status, headers, and a body read whole or
//! streaming, and how each kind of body is received.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use super::ApiRequest;
use crate::error::{Endpoint, Error, Result};

/// How long a streamed body may take in all (see [`Client::execute_streamed`]). A Bulk API
/// result page of a few hundred thousand records takes minutes at worst; a page cut at the
/// deadline fails with a timeout and can be fetched again by its locator.
pub(crate) const STREAMED_BODY_DEADLINE: Duration = Duration::from_secs(60 * 60);

/// A success body as the client hands it over: the chunks as they arrive, decompressed.
pub(crate) struct BodyStream(pub(crate) BoxStream<'static, reqwest::Result<Bytes>>);

// A named type, not an alias of a `dyn` type: rustc can then prove the futures that hold it
// `Send` (`Bulk::query_results`), which it cannot for a `dyn … + 'static` under the erased
// lifetimes of an `async fn`'s state.
impl futures::Stream for BodyStream {
    type Item = reqwest::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        futures::StreamExt::poll_next_unpin(&mut self.0, cx)
    }
}

/// How a success's body is received: read whole, or handed over as a stream.
pub(crate) trait ReceiveBody: Sized + Send + 'static {
    /// Whether the body is handed over unread.
    const STREAMED: bool;

    /// Takes the body of a success.
    fn receive(response: reqwest::Response) -> impl Future<Output = reqwest::Result<Self>> + Send;

    /// Whether the request asked for this success to be retried.
    fn rolled_back(request: &ApiRequest, response: &Response<Self>) -> bool;
}

impl ReceiveBody for Bytes {
    const STREAMED: bool = false;

    fn receive(response: reqwest::Response) -> impl Future<Output = reqwest::Result<Self>> + Send {
        response.bytes()
    }

    fn rolled_back(request: &ApiRequest, response: &Response<Self>) -> bool {
        request
            .retry_when
            .is_some_and(|rolled_back| rolled_back(response))
    }
}

impl ReceiveBody for BodyStream {
    const STREAMED: bool = true;

    fn receive(response: reqwest::Response) -> impl Future<Output = reqwest::Result<Self>> + Send {
        std::future::ready(Ok(BodyStream(response.bytes_stream().boxed())))
    }

    fn rolled_back(_: &ApiRequest, _: &Response<Self>) -> bool {
        false
    }
}

/// A response below 400, its body read (`Bytes`) or streaming ([`BodyStream`]).
pub(crate) struct Response<B = Bytes> {
    pub(crate) endpoint: Endpoint,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: B,
    /// When the request that got it was sent (after the rate limiter and the token).
    pub(crate) sent_at: chrono::DateTime<chrono::Utc>,
}

impl<B> Response<B> {
    /// A response header as text, if present and readable.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// An error for a status the operation does not expect.
    pub(crate) fn unexpected(&self) -> Error {
        Error::Protocol {
            endpoint: self.endpoint.clone(),
            detail: format!("unexpected status {}", self.status),
        }
    }
}

impl Response {
    /// Parses the body as `T`; `what` names it in the error.
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &'static str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            endpoint: self.endpoint.clone(),
            what,
            source,
        })
    }
}
