-- psql through the sfpg proxy: autocommit, an explicit transaction, and
-- \set AUTOCOMMIT off (psql then opens transactions itself). Run by
-- tests/proxy_clients.rs, which checks the org and the mirror afterwards.
\set ON_ERROR_STOP on

-- Autocommit: INSERT … RETURNING sfid gets the new Salesforce Id at once.
INSERT INTO salesforce.account (name, billingcity) VALUES ('psql Co', 'Rennes')
RETURNING sfid AS inserted \gset
\echo inserted :inserted

SELECT id AS first_id, sfid AS first_sfid FROM salesforce.account
 WHERE sfid <> :'inserted' ORDER BY id LIMIT 1 \gset
UPDATE salesforce.account SET billingcity = 'Brest' WHERE id = :first_id;
\echo autocommit_updated :first_sfid

-- An explicit transaction.
SELECT id AS second_id, sfid AS second_sfid FROM salesforce.account
 WHERE id > :first_id AND sfid <> :'inserted' ORDER BY id LIMIT 1 \gset
BEGIN;
UPDATE salesforce.account SET billingcity = 'Quimper' WHERE id = :second_id;
COMMIT;
\echo transaction_updated :second_sfid

-- psql's own transactions.
\set AUTOCOMMIT off
SELECT id AS third_id, sfid AS third_sfid FROM salesforce.account
 WHERE id > :second_id AND sfid <> :'inserted' ORDER BY id LIMIT 1 \gset
UPDATE salesforce.account SET billingcity = 'Vannes' WHERE id = :third_id;
COMMIT;
\echo autocommit_off_updated :third_sfid
UPDATE salesforce.account SET billingcity = 'Never' WHERE id = :third_id;
ROLLBACK;
\set AUTOCOMMIT on

DELETE FROM salesforce.account WHERE sfid = :'inserted';
\echo deleted :inserted
