//! How the Pub/Sub transport reaches Salesforce: the gRPC channel (TLS with rustls and the
//! client's CA bundle, or plain `http://` for a local emulator), the auth metadata every call
//! carries (`accesstoken`, `instanceurl`, `tenantid`; reference streaming §2.1), and what a
//! failed call means for a subscription.

use std::time::Duration;

use secrecy::ExposeSecret;
use sfpg_pubsub_proto::TopicRequest;
use sfpg_pubsub_proto::pub_sub_client::PubSubClient;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::client::Client;
use crate::error::{Error, Result};

/// Salesforce's global Pub/Sub API endpoint (the EU one is `api.deu.pubsub.salesforce.com`).
pub const DEFAULT_ENDPOINT: &str = "api.pubsub.salesforce.com:7443";

/// The trailer Salesforce puts its own error code in.
const ERROR_CODE: &str = "error-code";

/// What a failed call means for a subscription.
#[derive(Debug)]
pub(super) enum Trouble {
    /// Subscribe again, after a backoff.
    Reconnect(String),
    /// Log in again (a new token), then subscribe, after a backoff.
    Login(String),
    /// The replay id asked for is invalid or no longer retained.
    ReplayIdInvalid(String),
    /// The subscription ends with this error.
    Fatal(Error),
}

/// `https://host:port` for a bare `host:port` (as Salesforce documents its endpoint).
pub fn endpoint_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    }
}

/// A lazily connecting channel to `endpoint`.
pub(super) fn channel(
    client: &Client,
    endpoint: &str,
    connect_timeout: Duration,
) -> Result<Channel> {
    Ok(grpc_endpoint(client, endpoint, connect_timeout)?.connect_lazy())
}

/// The gRPC endpoint, trusting the client's CA bundle besides the system's roots.
fn grpc_endpoint(client: &Client, endpoint: &str, connect_timeout: Duration) -> Result<Endpoint> {
    let url = endpoint_url(endpoint);
    let bad = |e: tonic::transport::Error| Error::Config(format!("Pub/Sub endpoint {url}: {e}"));
    let mut builder = Endpoint::from_shared(url.clone())
        .map_err(bad)?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        // Finds a connection that died quietly between keepalive batches (270 s apart).
        .http2_keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = client.config().ca_certificates_pem() {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        builder = builder.tls_config(tls).map_err(bad)?;
    }
    Ok(builder)
}

/// Whether the Pub/Sub API at `endpoint` can be used for `topic` within `timeout`: a
/// connection (TCP, TLS, HTTP/2) and a `GetTopic` with the client's token that says the
/// topic can be subscribed to. What the `auto` transport asks before choosing Pub/Sub over
/// CometD: a port a network blocks, and an org or user Pub/Sub refuses, both fail it.
pub async fn probe(client: &Client, endpoint: &str, topic: &str, timeout: Duration) -> Result<()> {
    let url = endpoint_url(endpoint);
    let refused = |status: &str, detail: String| Error::PubSub {
        endpoint: url.clone(),
        status: status.to_owned(),
        error_code: None,
        message: detail,
    };
    let grpc = grpc_endpoint(client, endpoint, timeout)?;
    let channel = match tokio::time::timeout(timeout, grpc.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(error)) => return Err(refused("Unavailable", source_chain(&error))),
        Err(_) => {
            return Err(refused(
                "Unavailable",
                format!("no connection within {}s", timeout.as_secs_f64()),
            ));
        }
    };
    let mut request = tonic::Request::new(TopicRequest {
        topic_name: topic.to_owned(),
    });
    *request.metadata_mut() = auth_metadata(client).await?;
    let answer = tokio::time::timeout(timeout, PubSubClient::new(channel).get_topic(request)).await;
    crate::telemetry::pubsub_call(client.config().org_label(), &answer);
    match answer {
        Ok(Ok(info)) if info.get_ref().can_subscribe => Ok(()),
        Ok(Ok(_)) => Err(refused(
            "PermissionDenied",
            format!("{topic} cannot be subscribed to"),
        )),
        Ok(Err(status)) => Err(error(endpoint, "GetTopic", &status)),
        Err(_) => Err(refused(
            "DeadlineExceeded",
            format!("no answer to GetTopic within {}s", timeout.as_secs_f64()),
        )),
    }
}

/// An error with its causes, `a: b: c`.
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The auth metadata of the client's current token (logging in first if there is none).
pub(super) async fn auth_metadata(client: &Client) -> Result<MetadataMap> {
    let token = client.token().await?;
    let tenant = token.org_id().ok_or_else(|| {
        Error::Config("the token's identity URL names no org id (tenantid)".to_owned())
    })?;
    let value = |text: &str, what: &str| {
        AsciiMetadataValue::try_from(text)
            .map_err(|_| Error::Config(format!("the {what} cannot be sent as gRPC metadata")))
    };
    let mut metadata = MetadataMap::new();
    metadata.insert(
        "accesstoken",
        value(token.access_token().expose_secret(), "access token")?,
    );
    metadata.insert(
        "instanceurl",
        value(
            token.instance_url().as_str().trim_end_matches('/'),
            "instance URL",
        )?,
    );
    metadata.insert("tenantid", value(tenant, "org id")?);
    Ok(metadata)
}

/// The `error-code` trailer of a failed call.
pub(super) fn error_code(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The typed error of a failed call to `method`.
pub(super) fn error(endpoint: &str, method: &str, status: &Status) -> Error {
    Error::PubSub {
        endpoint: format!("{} {method}", endpoint_url(endpoint)),
        status: format!("{:?}", status.code()),
        error_code: error_code(status),
        message: status.message().to_owned(),
    }
}

/// What a failed call means: Salesforce's error codes first (reference: the documented
/// `sfdc.platform.eventbus.grpc.*` list), then the gRPC status.
pub(super) fn trouble(endpoint: &str, method: &str, status: &Status) -> Trouble {
    let code = error_code(status).unwrap_or_default();
    let reason = error(endpoint, method, status).to_string();
    if code.contains(".replayid.") {
        return Trouble::ReplayIdInvalid(reason);
    }
    if code.contains(".auth.") || status.code() == Code::Unauthenticated {
        return Trouble::Login(reason);
    }
    match status.code() {
        Code::Unavailable
        | Code::Internal
        | Code::Unknown
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Ok => Trouble::Reconnect(reason),
        _ => Trouble::Fatal(error(endpoint, method, status)),
    }
}

/// What an error of the client (a failed login) means.
pub(super) fn client_trouble(error: Error) -> Trouble {
    match error.class() {
        crate::ErrorClass::Retryable => Trouble::Reconnect(error.to_string()),
        _ => Trouble::Fatal(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, error_code: Option<&str>) -> Status {
        let mut metadata = MetadataMap::new();
        if let Some(error_code) = error_code {
            metadata.insert(ERROR_CODE, error_code.parse().unwrap());
        }
        Status::with_metadata(code, "refused rpcId: 1", metadata)
    }

    #[test]
    fn endpoints_without_a_scheme_are_tls() {
        assert_eq!(
            endpoint_url(DEFAULT_ENDPOINT),
            "https://api.pubsub.salesforce.com:7443"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:7000/"),
            "http://127.0.0.1:7000"
        );
    }

    #[test]
    fn salesforce_error_codes_decide_before_the_status() {
        let replay = status(
            Code::InvalidArgument,
            Some("sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"),
        );
        assert!(matches!(
            trouble("e", "Subscribe", &replay),
            Trouble::ReplayIdInvalid(_)
        ));
        let auth = status(
            Code::PermissionDenied,
            Some("sfdc.platform.eventbus.grpc.service.auth.error"),
        );
        assert!(matches!(
            trouble("e", "Subscribe", &auth),
            Trouble::Login(_)
        ));
        assert!(matches!(
            trouble("e", "Subscribe", &status(Code::Unauthenticated, None)),
            Trouble::Login(_)
        ));
        assert!(matches!(
            trouble("e", "Subscribe", &status(Code::Unavailable, None)),
            Trouble::Reconnect(_)
        ));
        match trouble(
            "e",
            "Subscribe",
            &status(Code::InvalidArgument, Some("x.y")),
        ) {
            Trouble::Fatal(error) => {
                let text = error.to_string();
                assert!(text.contains("InvalidArgument (x.y)"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
}
