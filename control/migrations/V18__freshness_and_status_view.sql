-- Freshness and the status view (issue 27).
--
-- How far behind Salesforce an object's mirror may be, from two points in time the sync
-- records (the object is fresh as of the later one):
--   caught_up_at       the start of the last poll of its changes that came back caught up
--                      (saved in that poll's checkpoint transaction): every change committed
--                      before it is in the mirror;
--   streamed_through   while the org's Change Data Capture stream keeps the object current:
--                      the commitTimestamp of the last event applied (saved in the event's
--                      transaction), or the arrival of the last keepalive received with
--                      nothing held back (a stream that catches up records nothing).
-- The lag is now less the later of the two. The age of the newest SystemModstamp, which
-- `sfpg status` showed before, said how long ago a record last changed, not whether the
-- mirror is behind.
--
-- Salesforce's errorCode of the last error, beside its text, for people and dashboards:
--   sfpg.orgs.last_error_code, sfpg.objects.last_error_code.
ALTER TABLE sfpg.objects
    ADD COLUMN caught_up_at     timestamptz,
    ADD COLUMN streamed_through timestamptz,
    ADD COLUMN last_error_code  text;

ALTER TABLE sfpg.orgs
    ADD COLUMN last_error_code text;

-- What `sfpg status` and the status page show, one row per object (an org without objects
-- has one row, its object columns NULL), for SQL dashboards. No secret column: the sealed
-- credentials are not in it. A view runs with its owner's rights, so a read-only role
-- needs only `GRANT SELECT ON sfpg.status TO that_role` (USAGE on schema sfpg is PUBLIC's
-- since V3) and sees nothing else of the control schema.
--
--   org_state          disabled | auth_error (an org-wide failure, the credentials refused)
--                      | budget_exhausted (polling paused for the daily budget)
--                      | backfilling (an object is described or backfilled) | streaming
--                      | polling
--   worker             the sync process holding the org's lease (V17) while it is unexpired
--                      (a worker killed with -9 holds it until it expires)
--   org_lag_seconds    the largest lag of its enabled objects
--   budget_used        API requests used today as a share (0-1) of the daily allocation
--   backfill_progress  done / total of a backfill (0-1), NULL outside one
--   lag_seconds        now less fresh_as_of, never below 0 (Salesforce's clock may run ahead)
CREATE VIEW sfpg.status AS
WITH objects AS (
    SELECT j.*, greatest(j.caught_up_at, j.streamed_through) AS fresh_as_of
      FROM sfpg.objects j
), lags AS (
    SELECT j.*,
           CASE WHEN j.fresh_as_of IS NOT NULL
                THEN greatest(0, extract(epoch FROM now() - j.fresh_as_of))::float8 END
               AS lag_seconds
      FROM objects j
)
SELECT o.name AS org_name,
       o.schema_name,
       CASE
           WHEN NOT o.enabled THEN 'disabled'
           WHEN o.last_error IS NOT NULL THEN 'auth_error'
           WHEN o.paused_reason IS NOT NULL THEN 'budget_exhausted'
           WHEN bool_or(j.enabled AND j.phase IN ('describing', 'backfilling'))
                OVER (PARTITION BY o.name) THEN 'backfilling'
           WHEN s.state = 'connected' THEN 'streaming'
           ELSE 'polling'
       END AS org_state,
       (SELECT l.owner FROM sfpg.leases l
         WHERE l.org_name = o.name AND l.expires_at > now()) AS worker,
       max(j.lag_seconds) FILTER (WHERE j.enabled) OVER (PARTITION BY o.name) AS org_lag_seconds,
       CASE WHEN NOT o.cdc_enabled THEN 'off' ELSE coalesce(s.state, 'down') END AS stream_state,
       s.state_reason AS stream_reason,
       s.transport AS stream_transport,
       s.last_lag_ms AS stream_last_lag_ms,
       o.api_used,
       o.api_max,
       CASE WHEN o.api_max > 0 THEN o.api_used::float8 / o.api_max END AS budget_used,
       o.max_daily_share::float8 AS budget_share,
       o.paused_reason AS org_paused_reason,
       o.last_error AS org_last_error,
       o.last_error_code AS org_last_error_code,
       o.last_error_at AS org_last_error_at,
       j.object_name,
       j.table_name,
       j.enabled AS object_enabled,
       j.phase,
       j.paused_reason,
       j.row_count AS rows,
       j.backfill_done,
       j.backfill_total,
       CASE WHEN j.phase = 'backfilling' AND j.backfill_total > 0
            THEN least(1, j.backfill_done::float8 / j.backfill_total) END AS backfill_progress,
       j.bulk_purpose,
       j.bulk_job_id,
       j.bulk_processed,
       j.source,
       j.fresh_as_of,
       j.lag_seconds,
       j.requests,
       j.last_error,
       j.last_error_code,
       j.last_error_at
  FROM sfpg.orgs o
  LEFT JOIN sfpg.streams s ON s.org_name = o.name
  LEFT JOIN lags j ON j.org_name = o.name;

COMMENT ON VIEW sfpg.status IS
    'sfpg status as rows, one per object: org state, worker, freshness, stream, budget, last errors with Salesforce''s errorCode, and per object phase, rows, progress, lag and source';
