//! A local Salesforce org that speaks Salesforce's real wire formats: OAuth, REST, SOQL,
//! sObject Collections, API limits and fault injection. It shares no types with the client.
