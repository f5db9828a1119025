//! Salesforce's two error shapes: the REST error array (`[{"message", "errorCode",
//! "fields"}]`) and the OAuth token error (`{"error", "error_description"}`), plus the
//! Jackson-style wording Salesforce uses when a request body is not JSON.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::org::ApiError;

/// A REST error, rendered as Salesforce's one-element error array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error_code}: {message}")]
pub struct RestError {
    pub status: StatusCode,
    pub error_code: String,
    pub message: String,
    /// Absent for most errors (`INVALID_SESSION_ID`, `NOT_FOUND`); present and possibly
    /// empty for field-level ones.
    pub fields: Option<Vec<String>>,
}

/// One element of the error array, in Salesforce's key order.
#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [String]>,
}

impl RestError {
    pub fn new(status: StatusCode, error_code: &str, message: impl Into<String>) -> RestError {
        RestError {
            status,
            error_code: error_code.to_owned(),
            message: message.into(),
            fields: None,
        }
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> RestError {
        self.fields = Some(fields);
        self
    }

    /// `404 NOT_FOUND`: unknown object, unknown record, unknown route or API version.
    pub fn not_found() -> RestError {
        RestError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    /// `401 INVALID_SESSION_ID`, byte for byte what Salesforce sends.
    pub fn invalid_session() -> RestError {
        RestError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// `403 REQUEST_LIMIT_EXCEEDED` once the daily allocation is spent.
    pub fn request_limit_exceeded() -> RestError {
        RestError::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    /// `410 GONE` for a retired API version.
    pub fn gone() -> RestError {
        RestError::new(
            StatusCode::GONE,
            "GONE",
            "The requested resource has been retired or removed.",
        )
    }

    /// `405 METHOD_NOT_ALLOWED`, naming the methods the resource does allow.
    pub fn method_not_allowed(method: &str, allowed: &str) -> RestError {
        RestError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        )
    }

    /// `400 JSON_PARSER_ERROR` with the parser's message.
    pub fn json_parser(message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
    }

    /// `415 UNSUPPORTED_MEDIA_TYPE` for a body that is neither JSON nor XML.
    pub fn unsupported_media_type(content_type: &str) -> RestError {
        RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("Content type '{content_type}' not supported"),
        )
    }

    /// `400` for a bad query-string parameter or request shape.
    pub fn bad_request(error_code: &str, message: impl Into<String>) -> RestError {
        RestError::new(StatusCode::BAD_REQUEST, error_code, message)
    }
}

impl From<ApiError> for RestError {
    fn from(e: ApiError) -> RestError {
        RestError {
            status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            error_code: e.error_code,
            message: e.message,
            fields: e.fields,
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = [ErrorBody {
            message: &self.message,
            error_code: &self.error_code,
            fields: self.fields.as_deref(),
        }];
        (self.status, Json(body)).into_response()
    }
}

/// An OAuth token-endpoint error: HTTP 400 `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error}: {error_description}")]
pub struct OAuthError {
    pub error: &'static str,
    pub error_description: &'static str,
}

impl OAuthError {
    pub const AUTHENTICATION_FAILURE: OAuthError =
        OAuthError::new("invalid_grant", "authentication failure");
    pub const INVALID_CLIENT_ID: OAuthError =
        OAuthError::new("invalid_client_id", "client identifier invalid");
    pub const INVALID_CLIENT: OAuthError =
        OAuthError::new("invalid_client", "invalid client credentials");
    pub const UNSUPPORTED_GRANT_TYPE: OAuthError =
        OAuthError::new("unsupported_grant_type", "grant type not supported");
    pub const EXPIRED_REFRESH_TOKEN: OAuthError =
        OAuthError::new("invalid_grant", "expired access/refresh token");
    pub const INVALID_ASSERTION: OAuthError = OAuthError::new("invalid_grant", "invalid assertion");
    pub const AUDIENCE_INVALID: OAuthError =
        OAuthError::new("invalid_grant", "audience is invalid");
    pub const EXPIRED_ASSERTION: OAuthError =
        OAuthError::new("invalid_grant", "expired authorization code");
    pub const USER_NOT_APPROVED: OAuthError =
        OAuthError::new("invalid_grant", "user hasn't approved this consumer");
    pub const NO_CLIENT_CREDENTIALS_USER: OAuthError =
        OAuthError::new("invalid_grant", "no client credentials user enabled");
    pub const INVALID_REQUEST: OAuthError = OAuthError::new("invalid_request", "invalid request");

    const fn new(error: &'static str, error_description: &'static str) -> OAuthError {
        OAuthError {
            error,
            error_description,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(self)).into_response()
    }
}

/// Parses a request body as JSON, failing the way Salesforce does: `400
/// JSON_PARSER_ERROR` with Jackson's wording and a `[line:L, column:C]` position.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, RestError> {
    serde_json::from_slice(body).map_err(|e| RestError::json_parser(jackson_message(body, &e)))
}

/// Salesforce parses request bodies with Jackson and passes its message through. The
/// common cases are reproduced here from serde_json's error category and position.
fn jackson_message(body: &[u8], e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let line = e.line();
    // Jackson reports the column after the offending character; serde_json the column of it.
    let column = e.column() + 1;
    let at = format!(" at [line:{line}, column:{column}]");
    if body.iter().all(u8::is_ascii_whitespace) {
        return "No content to map due to end-of-input at [line:1, column:0]".to_owned();
    }
    match e.classify() {
        Category::Eof => format!("Unexpected end-of-input: expected close marker{at}"),
        Category::Syntax => {
            let offending = char_at(body, line, e.column());
            let message = e.to_string();
            match offending {
                Some(c) if message.starts_with("key must be a string") => format!(
                    "Unexpected character ('{c}' (code {})): was expecting double-quote to \
                     start field name{at}",
                    u32::from(c)
                ),
                // Jackson only reads a bare word when it could start `true`, `false` or
                // `null`; any other character is unexpected.
                Some(_) if message.starts_with("expected ident") => {
                    // Jackson reads the whole word first and points just past it, where
                    // serde_json stopped too.
                    let token = token_at(body, line, e.column());
                    let column = e.column();
                    format!(
                        "Unrecognized token '{token}': was expecting ('true', 'false' or \
                         'null') at [line:{line}, column:{column}]"
                    )
                }
                Some(c) if message.starts_with("expected value") => format!(
                    "Unexpected character ('{c}' (code {})): expected a valid value (number, \
                     String, array, object, 'true', 'false' or 'null'){at}",
                    u32::from(c)
                ),
                Some(c) => format!(
                    "Unexpected character ('{c}' (code {})): was expecting comma to separate \
                     entries{at}",
                    u32::from(c)
                ),
                None => format!("Unexpected end-of-input{at}"),
            }
        }
        Category::Data => format!("Cannot deserialize request body: {}{at}", strip_position(e)),
        Category::Io => format!("Unexpected end-of-input{at}"),
    }
}

/// serde_json's message without its own ` at line L column C` suffix.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The character at a 1-based line and column of the body, if it is there.
fn char_at(body: &[u8], line: usize, column: usize) -> Option<char> {
    let text = String::from_utf8_lossy(body);
    let line_text = text.lines().nth(line.checked_sub(1)?)?;
    line_text.chars().nth(column.checked_sub(1)?)
}

/// The bare word starting at (or running through) a position, as Jackson names it.
fn token_at(body: &[u8], line: usize, column: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let Some(line_text) = line.checked_sub(1).and_then(|l| text.lines().nth(l)) else {
        return String::new();
    };
    let chars: Vec<char> = line_text.chars().collect();
    let mut start = column.saturating_sub(1).min(chars.len());
    while start > 0 && chars[start - 1].is_ascii_alphanumeric() {
        start -= 1;
    }
    chars[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> String {
        parse_json::<serde_json::Value>(body.as_bytes())
            .unwrap_err()
            .message
    }

    #[test]
    fn bad_value_names_the_character_and_position() {
        assert_eq!(
            message("request=1"),
            "Unexpected character ('r' (code 114)): expected a valid value (number, String, \
             array, object, 'true', 'false' or 'null') at [line:1, column:2]"
        );
    }

    #[test]
    fn unquoted_key_asks_for_a_double_quote() {
        assert_eq!(
            message("{Name: 1}"),
            "Unexpected character ('N' (code 78)): was expecting double-quote to start field \
             name at [line:1, column:3]"
        );
    }

    #[test]
    fn misspelt_literals_are_unrecognized_tokens() {
        assert_eq!(
            message("{\"Name\": nul}"),
            "Unrecognized token 'nul': was expecting ('true', 'false' or 'null') at \
             [line:1, column:13]"
        );
        assert_eq!(
            message("{\"Name\": NULL}"),
            "Unexpected character ('N' (code 78)): expected a valid value (number, String, \
             array, object, 'true', 'false' or 'null') at [line:1, column:11]"
        );
    }

    #[test]
    fn empty_and_truncated_bodies() {
        assert_eq!(
            message(""),
            "No content to map due to end-of-input at [line:1, column:0]"
        );
        assert!(message("{\"Name\": \"x\"").starts_with("Unexpected end-of-input"));
    }

    #[tokio::test]
    async fn error_array_is_byte_for_byte_salesforce() {
        let response = RestError::invalid_session().into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
        );
    }

    #[tokio::test]
    async fn token_errors_are_flat_objects() {
        let response = OAuthError::AUTHENTICATION_FAILURE.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            br#"{"error":"invalid_grant","error_description":"authentication failure"}"#
        );
    }
}
