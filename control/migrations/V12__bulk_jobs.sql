-- Large reads through the Bulk API 2.0 (issue 22).
--
-- An org's bulk threshold: an object that counts at least this many records at the start of
-- its backfill is read through one Bulk API 2.0 query job instead of REST pages; so is an
-- incremental backlog larger than it, and the Id reconciliation and formula refresh of an
-- object holding more rows. NULL turns Bulk off for the org.
ALTER TABLE sfpg.orgs
    ADD COLUMN bulk_threshold bigint DEFAULT 50000 CHECK (bulk_threshold IS NULL OR bulk_threshold > 0);

-- The query job an object is being read through, saved with each page of its results in the
-- same transaction as the page's rows, so that a crash resumes at the next page.
--   bulk_purpose    what the job is for: the backfill, or an incremental catch-up;
--   bulk_job_id     the job (750…), NULL until it is created;
--   bulk_locator    the next page's Sforce-Locator, NULL for the first page;
--   bulk_snapshot   when the job was asked for: a catch-up's cursor moves there (less the
--                   overlap) once its last page is in;
--   bulk_processed  the job's numberRecordsProcessed as last seen, for status;
--   bulk_read       the records of its result pages written so far, which must come to
--                   numberRecordsProcessed after the last page;
--   bulk_merge      whether its pages may meet rows already mirrored (a job replacing one
--                   that failed or expired, a catch-up, a table that held rows), and so go
--                   through the merge under the version guard instead of a plain COPY.
ALTER TABLE sfpg.objects
    ADD COLUMN bulk_purpose text CHECK (bulk_purpose IN ('backfill', 'changes')),
    ADD COLUMN bulk_job_id text,
    ADD COLUMN bulk_locator text,
    ADD COLUMN bulk_snapshot timestamptz,
    ADD COLUMN bulk_processed bigint,
    ADD COLUMN bulk_read bigint NOT NULL DEFAULT 0,
    ADD COLUMN bulk_merge boolean NOT NULL DEFAULT false;

-- A running sync learns of a new threshold at once, as of a new rate.
DROP TRIGGER orgs_changed ON sfpg.orgs;
CREATE TRIGGER orgs_changed
    AFTER INSERT OR DELETE OR UPDATE OF rate_requests, rate_period_ms, max_daily_share, enabled,
        batch_size, sealed_credentials, bulk_threshold
    ON sfpg.orgs FOR EACH ROW EXECUTE FUNCTION sfpg.notify_org_changed();
