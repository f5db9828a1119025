-- The view's `rows` is what the object's table holds, whoever wrote it (the sync, the
-- stream, the proxy's clients), as PostgreSQL's statistics count it, a few seconds behind
-- a write; until the statistics have seen the table, the sync's own count of what it wrote
-- (`sfpg.objects.row_count`), which alone was the column until now and missed every row
-- a client wrote through the proxy. `sfpg status` and the status page read it from here.
-- Everything else is V18's view, column for column.

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
       CASE WHEN st.n_tup_ins > 0 OR st.n_live_tup > 0 THEN st.n_live_tup
            ELSE j.row_count END AS rows,
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
  LEFT JOIN lags j ON j.org_name = o.name
  LEFT JOIN pg_catalog.pg_stat_user_tables st
         ON st.schemaname = o.schema_name AND st.relname = j.table_name;
