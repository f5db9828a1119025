//! The gRPC Pub/Sub API transport (`eventbus.v1.PubSub`, reference streaming §2).

mod bitmap;
mod decode;
mod flow;
mod schema;
