//! Salesforce's Pub/Sub API (gRPC service `eventbus.v1.PubSub`) on its own port: `GetTopic`,
//! `GetSchema`, `Subscribe` (change events off the org's event bus, Avro-encoded with
//! schemas generated from the describe), `Publish` and `PublishStream`. Every call is
//! authenticated by its `accesstoken`, `instanceurl` and `tenantid` metadata against the
//! REST side's sessions; errors carry Salesforce's `error-code` trailer. TLS with the REST
//! port's certificate (ALPN `h2`), or plain HTTP/2 when the emulator speaks HTTP.
//! Platform events (`/event/<Name>__e`) come off the org's platform event store, and
//! `Publish` publishes them as a REST create does. `ManagedSubscribe` (beta on Salesforce)
//! answers `UNIMPLEMENTED`.

mod auth;
mod bitmap;
mod encode;
mod publish;
mod schema;
mod serve;
mod status;
mod streams;
mod subscribe;
mod topics;

use std::time::Duration;

use sfpg_pubsub_proto::pub_sub_server::PubSub;
use sfpg_pubsub_proto::{
    FetchRequest, ManagedFetchRequest, ManagedFetchResponse, PublishRequest, PublishResponse,
    SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use tonic::{Code, Request, Response, Status, Streaming};

pub use serve::{PubSubServer, serve};
pub use status::{code_by_name, error as status_error, error_code};
pub use streams::{StreamView, Streams};
pub use subscribe::{MAX_REQUESTED, Timings};

use super::orgs::OrgSet;
use super::state::AppState;
use status::{SCHEMA_PERMISSION, SCHEMA_VALIDATION_FAILED, error, rpc_id};
use std::sync::Arc;
use topics::{Schemas, Topic};

/// Salesforce sends a keepalive "within 270 seconds" when there are no events.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(270);
/// Salesforce closes a stream that has requested nothing for 60 seconds.
pub const DEFAULT_IDLE_CLOSE: Duration = Duration::from_secs(60);

/// What the Pub/Sub API keeps across calls: the open streams and the generated schemas.
#[derive(Debug, Default)]
pub struct Hub {
    pub streams: Streams,
    schemas: Schemas,
    /// While set, new connections to the Pub/Sub port are closed at once (the admin
    /// API's stand-in for a network that blocks port 7443).
    refusing: std::sync::atomic::AtomicBool,
}

impl Hub {
    /// Whether new connections are refused.
    pub fn refusing(&self) -> bool {
        self.refusing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets each CometD event message's `data.schema` to the id of the Avro schema the
    /// Pub/Sub API serves for it, as Salesforce's two APIs name one schema. Takes the
    /// org's lock: never call it holding the CometD clients'.
    pub fn name_cometd_schemas(
        &self,
        state: &super::state::Shared,
        messages: &mut [serde_json::Value],
    ) {
        for message in messages {
            let channel = message["channel"].as_str().unwrap_or_default();
            let schema = match crate::events::platform_topic(channel) {
                Some(topic) => self.schemas.platform_event(state, topic),
                None => {
                    match message["data"]["payload"]["ChangeEventHeader"]["entityName"].as_str() {
                        Some(entity) => self.schemas.change_event(state, entity),
                        None => None,
                    }
                }
            };
            if let Some(Ok(schema)) = schema
                && let Some(data) = message
                    .get_mut("data")
                    .and_then(serde_json::Value::as_object_mut)
            {
                data.insert(
                    "schema".to_owned(),
                    serde_json::Value::String(schema.id.clone()),
                );
            }
        }
    }

    /// Refuses new connections (closing them once accepted), or takes them again.
    pub fn set_refusing(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The service: the orgs, and the stream timings.
#[derive(Clone)]
pub struct Service {
    orgs: Arc<OrgSet>,
    timings: Timings,
}

impl Service {
    pub fn new(orgs: Arc<OrgSet>, timings: Timings) -> Service {
        Service { orgs, timings }
    }

    /// The caller's org (the one its access token belongs to) and user, from the call's
    /// auth metadata.
    fn authenticate<T>(&self, request: &Request<T>) -> Result<(AppState, crate::ids::Id), Status> {
        let token = request
            .metadata()
            .get("accesstoken")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let state = self.orgs.by_token(token).state.clone();
        let user = auth::check(&state, request.metadata())?.user_id;
        Ok((state, user))
    }
}

#[tonic::async_trait]
impl PubSub for Service {
    type SubscribeStream = subscribe::FetchStream;
    type PublishStreamStream = publish::PublishStream;
    type ManagedSubscribeStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<ManagedFetchResponse, Status>> + Send>>;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let (state, _) = self.authenticate(&request)?;
        let stream = subscribe::start(state, self.timings, request.into_inner());
        Ok(Response::new(stream))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        let (state, _) = self.authenticate(&request)?;
        let schema_id = request.into_inner().schema_id;
        if schema_id.trim().is_empty() {
            return Err(error(
                Code::InvalidArgument,
                SCHEMA_VALIDATION_FAILED,
                "The schema ID is blank.",
            ));
        }
        let schema = state
            .pubsub()
            .schemas
            .by_id(&state, &schema_id)
            .ok_or_else(|| {
                error(
                    Code::NotFound,
                    SCHEMA_PERMISSION,
                    &format!("No schema with ID {schema_id} is accessible."),
                )
            })?;
        Ok(Response::new(SchemaInfo {
            schema_json: schema.json.clone(),
            schema_id: schema.id.clone(),
            rpc_id: rpc_id(),
        }))
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        let (state, _) = self.authenticate(&request)?;
        let topic_name = request.into_inner().topic_name;
        let topic = topics::resolve(&state, &topic_name)?;
        let (can_publish, schema_id) = match &topic {
            // Each entity's events carry their own schema id.
            Topic::AllChanges => (false, String::new()),
            Topic::Changes { entity } => {
                let schema = state.pubsub().schemas.change_event(&state, entity);
                (false, schema_id_of(schema))
            }
            Topic::Platform { name } => {
                let schema = state.pubsub().schemas.platform_event(&state, name);
                (true, schema_id_of(schema))
            }
        };
        Ok(Response::new(TopicInfo {
            topic_name,
            tenant_guid: state.org_id.clone(),
            can_publish,
            can_subscribe: true,
            schema_id,
            rpc_id: rpc_id(),
        }))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let (state, user) = self.authenticate(&request)?;
        publish::publish(&state, &user, request.get_ref()).map(Response::new)
    }

    async fn publish_stream(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStreamStream>, Status> {
        let (state, user) = self.authenticate(&request)?;
        let stream = publish::start(state, user, request.into_inner());
        Ok(Response::new(stream))
    }

    async fn managed_subscribe(
        &self,
        request: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        self.authenticate(&request)?;
        Err(Status::unimplemented(
            "ManagedSubscribe (beta) is not emulated.",
        ))
    }
}

/// The id of a generated schema, or empty when there is none.
fn schema_id_of(
    schema: Option<Result<std::sync::Arc<encode::EventSchema>, encode::EncodeError>>,
) -> String {
    match schema {
        Some(Ok(schema)) => schema.id.clone(),
        _ => String::new(),
    }
}
