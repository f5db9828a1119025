-- A push whose session cancelled it while the request to Salesforce was under way: the
-- local transaction rolled back, and Salesforce may or may not have carried the request
-- out (a request it received runs to its end even when the client stops waiting). The
-- entry keeps the records as planned, so that an operator can tell what may have reached
-- Salesforce; the sync brings the mirror in line with what Salesforce holds.
ALTER TABLE sfpg.write_journal DROP CONSTRAINT write_journal_outcome_check;
ALTER TABLE sfpg.write_journal ADD CONSTRAINT write_journal_outcome_check
    CHECK (outcome IN ('pushed', 'refused', 'failed', 'abandoned'));
