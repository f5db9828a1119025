//! Which transport an org's stream runs on: the org's `cdc_transport` (V14) decides, and for
//! `auto` (the default) the Pub/Sub API when its endpoint accepts a connection, else CometD.
//! Many corporate networks block the Pub/Sub port (7443), so `auto` never leaves an org
//! without a stream for it. The choice is made again before every subscription, so an org
//! whose endpoint comes back moves to Pub/Sub on its next (re)subscription.
//!
//! Transports are kept between subscriptions: each one makes sure a channel never has two
//! subscriptions at once, which only holds for subscriptions made through the same one.

use std::sync::Arc;
use std::time::Duration;

use sfpg_control::orgs::OrgSettings;
use sfpg_control::streams::{CdcTransport, StreamTransport};
use sfpg_salesforce::Client;
use sfpg_salesforce::streaming::{CometD, EventTransport, PubSub, PubSubOptions, probe_pubsub};

/// How long `auto` waits for the Pub/Sub endpoint to accept a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The transport a subscription runs on, and why, for status and the log.
pub struct Chosen {
    pub transport: Arc<dyn EventTransport>,
    pub kind: StreamTransport,
    pub reason: String,
}

/// An org's transports.
pub struct Transports {
    client: Client,
    cometd: Arc<CometD>,
    /// The Pub/Sub transport, with the endpoint it was made for.
    pubsub: Option<(String, Arc<PubSub>)>,
    options: PubSubOptions,
}

impl Transports {
    /// The transports of `client`, Pub/Sub with the default options.
    pub fn new(client: Client) -> Self {
        Transports {
            cometd: Arc::new(CometD::new(client.clone())),
            client,
            pubsub: None,
            options: PubSubOptions::default(),
        }
    }

    /// The transport for the org's settings; `Err` with the reason when the one it asks
    /// for cannot be used (an endpoint that is no URL).
    pub async fn choose(&mut self, org: &OrgSettings) -> Result<Chosen, String> {
        let endpoint = org.pubsub_endpoint.as_str();
        match org.cdc_transport {
            CdcTransport::CometD => Ok(self.cometd("transport cometd".to_owned())),
            CdcTransport::PubSub => self.pubsub(endpoint, "transport pubsub".to_owned()),
            CdcTransport::Auto => match probe_pubsub(&self.client, endpoint, PROBE_TIMEOUT).await {
                Ok(()) => self.pubsub(
                    endpoint,
                    format!("transport auto: the Pub/Sub endpoint {endpoint} answers"),
                ),
                Err(error) => {
                    tracing::warn!(org = %org.name, %endpoint, %error, "the Pub/Sub endpoint cannot be reached; streaming over CometD");
                    Ok(self.cometd(format!(
                        "transport auto: the Pub/Sub endpoint cannot be reached ({error}), CometD instead"
                    )))
                }
            },
        }
    }

    fn cometd(&self, reason: String) -> Chosen {
        Chosen {
            transport: Arc::clone(&self.cometd) as Arc<dyn EventTransport>,
            kind: StreamTransport::CometD,
            reason,
        }
    }

    fn pubsub(&mut self, endpoint: &str, reason: String) -> Result<Chosen, String> {
        let current = match &self.pubsub {
            Some((made_for, transport)) if made_for == endpoint => Arc::clone(transport),
            _ => {
                let transport =
                    PubSub::with_options(self.client.clone(), endpoint, self.options.clone())
                        .map_err(|e| format!("transport pubsub: {e}"))?;
                let transport = Arc::new(transport);
                self.pubsub = Some((endpoint.to_owned(), Arc::clone(&transport)));
                transport
            }
        };
        Ok(Chosen {
            transport: current as Arc<dyn EventTransport>,
            kind: StreamTransport::PubSub,
            reason,
        })
    }
}
