//! Which transport an org's Change Data Capture stream runs on (V14): the org's choice
//! (`sfpg.orgs.cdc_transport`, `sfpg org set-cdc NAME on --transport …`) and the one the
//! sync runs now, with why (`sfpg.streams.transport`, `transport_reason`), for status.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::error::ControlError;

/// Salesforce's global Pub/Sub API endpoint, the default of `sfpg.orgs.pubsub_endpoint`.
pub use sfpg_salesforce::streaming::DEFAULT_PUBSUB_ENDPOINT;

/// The transport an org asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CdcTransport {
    /// The Pub/Sub API, or CometD when its endpoint cannot be reached.
    #[default]
    Auto,
    /// The Pub/Sub API only.
    #[serde(rename = "pubsub")]
    PubSub,
    /// CometD only.
    #[serde(rename = "cometd")]
    CometD,
}

impl CdcTransport {
    /// The text stored in `sfpg.orgs.cdc_transport`, and typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::PubSub => "pubsub",
            Self::CometD => "cometd",
        }
    }
}

impl fmt::Display for CdcTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CdcTransport {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "pubsub" => Ok(Self::PubSub),
            "cometd" => Ok(Self::CometD),
            _ => Err(format!("{text:?} is not auto, pubsub or cometd")),
        }
    }
}

/// The transport a stream runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StreamTransport {
    #[serde(rename = "pubsub")]
    PubSub,
    #[serde(rename = "cometd")]
    CometD,
}

impl StreamTransport {
    /// The text stored in `sfpg.streams.transport`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PubSub => "pubsub",
            Self::CometD => "cometd",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, ControlError> {
        match text {
            "pubsub" => Ok(Self::PubSub),
            "cometd" => Ok(Self::CometD),
            other => Err(ControlError::Corrupt(format!(
                "sfpg.streams.transport {other:?}"
            ))),
        }
    }
}

/// Records the transport the org's stream runs on, and why.
pub async fn set_transport(
    client: &impl GenericClient,
    org: &str,
    transport: StreamTransport,
    reason: &str,
) -> Result<(), ControlError> {
    client
        .execute(
            "INSERT INTO sfpg.streams (org_name, transport, transport_reason) VALUES ($1, $2, $3)
             ON CONFLICT (org_name) DO UPDATE
                SET transport = excluded.transport, transport_reason = excluded.transport_reason",
            &[&org, &transport.as_str(), &reason],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_as_typed() {
        for transport in [
            CdcTransport::Auto,
            CdcTransport::PubSub,
            CdcTransport::CometD,
        ] {
            assert_eq!(transport.as_str().parse::<CdcTransport>(), Ok(transport));
        }
        assert_eq!(" PubSub ".parse::<CdcTransport>(), Ok(CdcTransport::PubSub));
        assert!("grpc".parse::<CdcTransport>().is_err());
        assert_eq!(
            StreamTransport::parse("cometd").unwrap(),
            StreamTransport::CometD
        );
    }
}
