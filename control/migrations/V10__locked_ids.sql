-- The Salesforce Ids of records whose mirror rows a client held locked when the sync came
-- to write them. The sync writes the rest of the page and moves its checkpoint on; these
-- records are read again by Id and written once their rows are free. Kept here, in the
-- transaction that moved the checkpoint, so that a crash cannot lose them.
ALTER TABLE sfpg.objects ADD COLUMN locked_ids text[] NOT NULL DEFAULT '{}';
