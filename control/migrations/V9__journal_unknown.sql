-- A push whose outcome the proxy cannot know: the request may have reached Salesforce, but
-- no answer came back (the connection was cut after the request left, the request timed
-- out, or Salesforce's answer could not be read). The client was told 08007
-- transaction_resolution_unknown and its transaction rolled back; the journal resolves it.
--
-- Such an entry ('unknown', and 'abandoned', a push the client cancelled under way) is
-- resolved by reading Salesforce again: the records it names by Id, and for new records
-- (whose Ids never came back) what changed in their objects since the push started. Since
-- Salesforce may still be carrying the request out, that is done at once and again at
-- growing intervals (`next_check_at`, `checks`), until no request could still be running.
ALTER TABLE sfpg.write_journal DROP CONSTRAINT write_journal_outcome_check;
ALTER TABLE sfpg.write_journal ADD CONSTRAINT write_journal_outcome_check
    CHECK (outcome IN ('pushed', 'refused', 'failed', 'abandoned', 'unknown'));
ALTER TABLE sfpg.write_journal
    ADD COLUMN checks integer NOT NULL DEFAULT 0,
    ADD COLUMN next_check_at timestamptz;
DROP INDEX sfpg.write_journal_unresolved_idx;
CREATE INDEX write_journal_unresolved_idx ON sfpg.write_journal (id)
    WHERE outcome IN ('pushed', 'unknown', 'abandoned') AND resolution IS NULL;
