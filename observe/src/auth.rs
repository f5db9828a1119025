//! The bearer check in front of every path of the listener, and the rule that decides when
//! a token is required (any address that is not loopback).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether every address `host:port` resolved to is loopback: only then may the listener
/// serve without a token.
pub(crate) fn all_loopback(addrs: &[SocketAddr]) -> bool {
    !addrs.is_empty() && addrs.iter().all(|addr| addr.ip().is_loopback())
}

/// Axum middleware: with a token set, a request without `Authorization: Bearer <token>`
/// gets 401 and nothing else.
pub(crate) async fn require_bearer(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(presented) if same_secret(presented.as_bytes(), token.as_bytes()) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a bearer token is required\n",
        )
            .into_response(),
    }
}

/// Compares two secrets in time that depends on their lengths only, so a caller cannot
/// find the token byte by byte from response times.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_go_without_a_token() {
        let parse = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(all_loopback(&[
            parse("127.0.0.1:9187"),
            parse("[::1]:9187")
        ]));
        assert!(!all_loopback(&[parse("0.0.0.0:9187")]));
        assert!(!all_loopback(&[parse("127.0.0.1:1"), parse("10.0.0.5:1")]));
        assert!(!all_loopback(&[]));
    }

    #[test]
    fn secrets_compare_by_every_byte() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
    }
}
