-- The worker in sfpg.status (V18) from the leases of V17 (issue 26): workers hold orgs by
-- expiring leases in sfpg.leases instead of session advisory locks, so the view's `worker`
-- is `sfpg.orgs.lease_owner` while that owner's lease is unexpired (a worker killed with -9
-- leaves its name behind until its lease expires, and the next holder's replaces it).
-- Nothing else of the view changes; V18 stays as it was applied.
CREATE OR REPLACE VIEW sfpg.status AS
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
       CASE WHEN EXISTS (
           SELECT 1 FROM sfpg.leases l
            WHERE l.org_name = o.name AND l.owner = o.lease_owner AND l.expires_at > now()
       ) THEN o.lease_owner END AS worker,
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
