//! A minimal Pub/Sub API client for the tests: the generated tonic client over a real
//! socket, the auth metadata on every call, a Subscribe whose requests the test sends one
//! by one, and Avro decoding with the schema GetSchema returns.

use std::collections::HashMap;
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use sfpg_pubsub_proto::pub_sub_client::PubSubClient;
use sfpg_pubsub_proto::{
    ConsumerEvent, FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, replay_id_bytes,
};
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use super::Harness;

/// A connected client and the metadata it sends.
pub struct PubSub {
    pub client: PubSubClient<Channel>,
    pub token: String,
    pub instance_url: String,
    pub tenant: String,
    schemas: HashMap<String, Schema>,
}

/// An open Subscribe call: send more requests, read the responses.
pub struct Subscription {
    pub requests: mpsc::Sender<FetchRequest>,
    pub responses: Streaming<FetchResponse>,
}

impl PubSub {
    /// Connects to the harness's emulator over plain HTTP/2, as its logged-in user.
    pub async fn connect(h: &Harness) -> PubSub {
        let client = PubSubClient::connect(h.emulator.pubsub_endpoint().to_owned())
            .await
            .expect("the Pub/Sub port accepts a connection");
        PubSub::with_client(h, client)
    }

    pub fn with_client(h: &Harness, client: PubSubClient<Channel>) -> PubSub {
        PubSub {
            client,
            token: h.token.clone(),
            instance_url: h.emulator.instance_url().to_owned(),
            tenant: h.emulator.org_id().to_owned(),
            schemas: HashMap::new(),
        }
    }

    /// `message` with the auth metadata.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("accesstoken", self.token.parse().unwrap());
        metadata.insert("instanceurl", self.instance_url.parse().unwrap());
        metadata.insert("tenantid", self.tenant.parse().unwrap());
        request
    }

    /// Opens a Subscribe call whose first request is `first`.
    pub async fn subscribe(&mut self, first: FetchRequest) -> Result<Subscription, Status> {
        let (requests, rx) = mpsc::channel(16);
        requests.send(first).await.unwrap();
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let responses = self
            .client
            .subscribe(self.request(stream))
            .await?
            .into_inner();
        Ok(Subscription {
            requests,
            responses,
        })
    }

    /// The schema `schema_id`, from GetSchema (once).
    pub async fn schema(&mut self, schema_id: &str) -> Schema {
        if let Some(schema) = self.schemas.get(schema_id) {
            return schema.clone();
        }
        let request = self.request(SchemaRequest {
            schema_id: schema_id.to_owned(),
        });
        let info = self.client.get_schema(request).await.unwrap().into_inner();
        assert_eq!(info.schema_id, schema_id);
        let schema = Schema::parse_str(&info.schema_json).unwrap();
        self.schemas.insert(schema_id.to_owned(), schema.clone());
        schema
    }

    /// An event's payload decoded with its schema, as a record's fields by name.
    pub async fn decode(&mut self, event: &ConsumerEvent) -> HashMap<String, Avro> {
        let produced = event.event.as_ref().unwrap();
        let schema = self.schema(&produced.schema_id).await;
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut produced.payload.as_slice())
            .unwrap();
        record(value)
    }
}

/// A record's fields by name (unions unwrapped).
pub fn record(value: Avro) -> HashMap<String, Avro> {
    match unwrap(value) {
        Avro::Record(fields) => fields.into_iter().map(|(k, v)| (k, unwrap(v))).collect(),
        other => panic!("not a record: {other:?}"),
    }
}

/// A union's value, or the value itself.
pub fn unwrap(value: Avro) -> Avro {
    match value {
        Avro::Union(_, inner) => *inner,
        other => other,
    }
}

/// A first FetchRequest.
pub fn fetch(topic: &str, preset: ReplayPreset, replay_id: Option<i64>, n: i32) -> FetchRequest {
    FetchRequest {
        topic_name: topic.to_owned(),
        replay_preset: preset as i32,
        replay_id: replay_id.map(replay_id_bytes).unwrap_or_default(),
        num_requested: n,
        auth_refresh: String::new(),
    }
}

/// A later FetchRequest: more demand.
pub fn more(n: i32) -> FetchRequest {
    FetchRequest {
        num_requested: n,
        ..FetchRequest::default()
    }
}

impl Subscription {
    /// The next response, within `wait`; `None` when the stream ended cleanly, panics on
    /// an error.
    pub async fn next(&mut self, wait: Duration) -> Option<FetchResponse> {
        tokio::time::timeout(wait, self.responses.message())
            .await
            .expect("a response in time")
            .expect("no error")
    }

    /// Responses until `n` events came; returns the events and the last response.
    pub async fn events(&mut self, n: usize) -> (Vec<ConsumerEvent>, FetchResponse) {
        let mut events = Vec::new();
        loop {
            let response = self
                .next(Duration::from_secs(5))
                .await
                .expect("the stream stays open");
            events.extend(response.events.iter().cloned());
            if events.len() >= n {
                return (events, response);
            }
        }
    }

    /// The status the stream ends with.
    pub async fn error(&mut self) -> Status {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.responses.message())
                .await
                .expect("the stream ends in time")
            {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => return status,
            }
        }
    }
}

/// The `error-code` trailer of a status.
pub fn error_code(status: &Status) -> String {
    status
        .metadata()
        .get("error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
