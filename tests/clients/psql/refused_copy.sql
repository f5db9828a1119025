-- psql through the sfpg proxy: a COPY in autocommit whose rows Salesforce refuses (a
-- negative amount breaks Invoice__c's validation rule). psql must print the error alone,
-- not `COPY 2` before it, and stop there with ON_ERROR_STOP (exit status 3). Run by
-- tests/proxy_clients.rs.
\set ON_ERROR_STOP on
\set VERBOSITY verbose
COPY salesforce.invoice__c (amount__c, status__c) FROM STDIN;
10	Draft
-5	Draft
\.
\echo not reached
