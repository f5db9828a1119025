//! The Salesforce client sfpg's sync and proxy use: OAuth flows, REST, SOQL query paging,
//! sObject Collections, typed errors, retries and per-org rate limiting.
