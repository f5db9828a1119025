-- Large writes through Bulk API 2.0 ingest jobs (issue 25, `sfpg.bulk_writes`).
--
-- A transaction pushed through ingest jobs is not atomic in Salesforce: some of its records
-- may be refused while the rest are saved. The client's transaction then commits what
-- Salesforce accepted and puts every refused row back as it was before the transaction,
-- and each refusal is kept here for the role that made it to read.
--
--   * sfpg.write_failures: one row per refused (or unprocessed) record. Written by the
--     proxy on its own connection (the owner), readable by every role, each role seeing
--     only the rows of its own transactions (row-level security on `role_name`). Kept for
--     the proxy's `--failures-retention` (default 7 days; sfpg.purge_write_failures).
--   * sfpg.restore_refused(ticket, schema, table, rows): puts refused rows back in the
--     client's transaction, uncaptured, as sfpg.write_back writes (the push ticket, the
--     `push:` origin for its own statements only, a pinned search_path).

CREATE TABLE sfpg.write_failures (
    id           bigserial PRIMARY KEY,
    -- The role whose transaction it was (the client's current_user at COMMIT).
    role_name    name NOT NULL,
    -- The client transaction's id and the write journal's entry of the push.
    txid         text NOT NULL,
    journal_id   bigint,
    org_name     text NOT NULL,
    -- The ingest job that refused the record; NULL when it was never sent (its parent
    -- was refused, or the push stopped before its job).
    job_id       text,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    row_id       bigint,
    sfid         text,
    operation    text NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    -- Salesforce's errorCode, message and fields (`sf__Error`), or the proxy's own reason
    -- for a record it did not send (`UNPROCESSED`, `PARENT_REFUSED`, `CANCELED`).
    error_code   text NOT NULL,
    message      text NOT NULL,
    fields       text[] NOT NULL DEFAULT '{}',
    failed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX write_failures_role_idx ON sfpg.write_failures (role_name, txid);
CREATE INDEX write_failures_failed_at_idx ON sfpg.write_failures (failed_at);
COMMENT ON TABLE sfpg.write_failures IS
    'Records Salesforce refused in bulk pushes (sfpg.bulk_writes); each role reads its own.';

ALTER TABLE sfpg.write_failures ENABLE ROW LEVEL SECURITY;
CREATE POLICY write_failures_own_rows ON sfpg.write_failures
    FOR SELECT USING (role_name = current_user);
GRANT SELECT ON sfpg.write_failures TO PUBLIC;

-- Drops the failures older than `retention`; returns how many.
CREATE FUNCTION sfpg.purge_write_failures(retention interval) RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH gone AS (
        DELETE FROM sfpg.write_failures WHERE failed_at < now() - retention RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION sfpg.purge_write_failures(interval) FROM PUBLIC;

-- Puts refused rows of a bulk push back as they were before the transaction, in the
-- client's transaction: `rows` is a JSON array of `{"id": <local id>}` (a refused create:
-- the row is deleted) or `{"id": …, "row": {<the row before the transaction>}}` (a refused
-- update: the row gets those values back; a refused delete: the row is inserted again).
CREATE FUNCTION sfpg.restore_refused(ticket text, schema_name text, table_name text, rows text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target   regclass := to_regclass(quote_ident(schema_name) || '.' || quote_ident(table_name));
    data     jsonb := rows::jsonb;
    previous text := current_setting('sfpg.origin', true);
    targets  text;
    sources  text;
    done     bigint;
    total    bigint := 0;
BEGIN
    IF NOT sfpg.push_ticket_valid(ticket) THEN
        RAISE EXCEPTION 'only the sfpg proxy may restore the rows of a push'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF target IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_trigger
         WHERE tgrelid = target AND tgname = 'sfpg_capture'
           AND tgfoid = 'sfpg.capture_change()'::regprocedure
    ) THEN
        RAISE EXCEPTION 'table %.% is not a mirrored table', schema_name, table_name
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('(p).%I', a.attname), ', ' ORDER BY a.attnum)
      INTO targets, sources
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id';
    PERFORM set_config('sfpg.origin', 'push:' || ticket, true);
    -- Refused creates: the row goes.
    EXECUTE format(
        'DELETE FROM %1$s AS t USING jsonb_array_elements($1) e
          WHERE NOT e ? ''row'' AND t.id = (e ->> ''id'')::bigint', target)
    USING data;
    GET DIAGNOSTICS done = ROW_COUNT;
    total := total + done;
    -- Refused updates: the row gets its values from before the transaction back.
    EXECUTE format(
        'UPDATE %1$s AS t SET (%2$s) = (SELECT %3$s FROM (SELECT jsonb_populate_record(t, r.j) AS p) x)
           FROM (SELECT (e ->> ''id'')::bigint AS id, e -> ''row'' AS j
                   FROM jsonb_array_elements($1) e WHERE e ? ''row'') r
          WHERE t.id = r.id',
        target, targets, sources)
    USING data;
    GET DIAGNOSTICS done = ROW_COUNT;
    total := total + done;
    -- Refused deletes: the row comes back, with its own local id.
    EXECUTE format(
        'INSERT INTO %1$s SELECT (jsonb_populate_record(NULL::%1$s, e -> ''row'')).*
           FROM jsonb_array_elements($1) e
          WHERE e ? ''row''
            AND NOT EXISTS (SELECT 1 FROM %1$s t WHERE t.id = (e ->> ''id'')::bigint)',
        target)
    USING data;
    GET DIAGNOSTICS done = ROW_COUNT;
    total := total + done;
    PERFORM set_config('sfpg.origin', coalesce(previous, ''), true);
    RETURN total;
END
$$;
GRANT EXECUTE ON FUNCTION sfpg.restore_refused(text, text, text, text) TO PUBLIC;
