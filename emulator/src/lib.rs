//! A local Salesforce org that speaks Salesforce's real wire formats: OAuth, REST, SOQL,
//! sObject Collections, API limits and fault injection. It shares no types with the
//! `sfpg-salesforce` client, so the two cannot agree on the same mistake.

pub mod events;
pub mod generator;
pub mod http;
pub mod ids;
pub mod model;
pub mod org;
pub mod soql;
