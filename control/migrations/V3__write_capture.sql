-- Write capture: triggers on every mirrored table record the changes a transaction makes,
-- so that the proxy can push them to Salesforce before the transaction commits.
--
-- Who may write a mirrored table is decided by the setting `sfpg.origin`:
--   'proxy'  set for every session of the sfpg proxy: changes are captured and pushed;
--   'sync'   set (transaction-locally) by the sync and by the proxy's write-back: changes
--            are what Salesforce already holds and are not captured;
--   unset    any other session: writes and TRUNCATE are refused.
-- A captured change must be taken (read and deleted) by the proxy's push before COMMIT; a
-- deferred check refuses to commit a transaction that still holds one, so no change can
-- reach the mirror without having reached Salesforce.

CREATE UNLOGGED TABLE sfpg.pending_changes (
    seq          bigserial PRIMARY KEY,
    -- The transaction that made the change; rows never outlive it (they are deleted by
    -- the push, or vanish with a rollback), hence UNLOGGED.
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    table_oid    oid NOT NULL,
    operation    text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    -- The row's local `id`.
    row_id       bigint,
    old_row      jsonb,
    new_row      jsonb,
    -- UPDATE: the columns whose value changed, in column order.
    changed      text[]
);
CREATE INDEX pending_changes_txid_idx ON sfpg.pending_changes (txid);
COMMENT ON TABLE sfpg.pending_changes IS
    'Changes to mirrored tables captured in open transactions, taken by the sfpg proxy at commit.';

-- The trigger functions run as their owner so that any role allowed to write a mirrored
-- table can record its change without privileges on the control schema.
CREATE FUNCTION sfpg.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    origin  text := current_setting('sfpg.origin', true);
    changed text[];
BEGIN
    IF origin = 'sync' THEN
        RETURN NULL;
    END IF;
    IF origin IS DISTINCT FROM 'proxy' THEN
        RAISE EXCEPTION 'cannot % table %.%: it mirrors Salesforce and is written through the sfpg proxy',
                lower(TG_OP), TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'read_only_sql_transaction',
                  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  DETAIL = 'A change made here directly would never reach Salesforce, and the next sync would undo it.',
                  HINT = 'Connect through the sfpg proxy (sfpg proxy --listen ADDR), which applies the change to Salesforce before it commits.';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(n.key ORDER BY a.attnum)
          INTO changed
          FROM jsonb_each(to_jsonb(NEW)) n
          JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
          JOIN pg_attribute a ON a.attrelid = TG_RELID AND a.attname = n.key
         WHERE n.value IS DISTINCT FROM o.value;
        IF changed IS NULL THEN
            -- Nothing changed (UPDATE … SET x = x): nothing to push.
            RETURN NULL;
        END IF;
        INSERT INTO sfpg.pending_changes
            (schema_name, table_name, table_oid, operation, row_id, old_row, new_row, changed)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, TG_OP, (to_jsonb(NEW) ->> 'id')::bigint,
                to_jsonb(OLD), to_jsonb(NEW), changed);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO sfpg.pending_changes
            (schema_name, table_name, table_oid, operation, row_id, new_row)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, TG_OP, (to_jsonb(NEW) ->> 'id')::bigint,
                to_jsonb(NEW));
    ELSE
        INSERT INTO sfpg.pending_changes
            (schema_name, table_name, table_oid, operation, row_id, old_row)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, TG_OP, (to_jsonb(OLD) ->> 'id')::bigint,
                to_jsonb(OLD));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION sfpg.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_setting('sfpg.origin', true) = 'sync' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'cannot truncate table %.%: it mirrors Salesforce', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported',
              SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'TRUNCATE would empty the mirror without deleting anything in Salesforce.',
              HINT = 'To delete the records in Salesforce, DELETE them through the sfpg proxy; to stop mirroring the object, disable it with sfpg objects disable.';
END
$$;

-- Deferred to COMMIT: a captured change still here was never pushed to Salesforce.
CREATE FUNCTION sfpg.check_change_pushed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sfpg.pending_changes WHERE seq = NEW.seq) THEN
        RAISE EXCEPTION 'cannot commit: a change to %.% was not sent to Salesforce', NEW.schema_name, NEW.table_name
            USING ERRCODE = 'read_only_sql_transaction',
                  SCHEMA = NEW.schema_name, TABLE = NEW.table_name,
                  DETAIL = 'The sfpg proxy pushes the changes of statements it recognises as writes; this one was not, for example a write inside a function called from SELECT.',
                  HINT = 'Run the write as INSERT, UPDATE, DELETE, MERGE, CALL or DO, or inside BEGIN … COMMIT with one of those.';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER pending_changes_pushed
    AFTER INSERT ON sfpg.pending_changes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION sfpg.check_change_pushed();

-- The proxy's push: reads and deletes the current transaction's captured changes, oldest
-- first, as one JSON array of objects with the columns of sfpg.pending_changes (see
-- sfpg_schema::capture). Any role may call it; it only ever sees its own transaction.
CREATE FUNCTION sfpg.take_pending_changes() RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH taken AS (
        DELETE FROM sfpg.pending_changes
         WHERE txid = pg_current_xact_id_if_assigned()
        RETURNING seq, schema_name, table_name, table_oid::bigint AS table_oid, operation, row_id,
                  old_row, new_row, changed
    )
    SELECT coalesce(json_agg(taken ORDER BY seq), '[]')::text FROM taken
$$;

-- Calling the functions above needs USAGE on the schema; its tables stay private.
GRANT USAGE ON SCHEMA sfpg TO PUBLIC;
REVOKE ALL ON sfpg.pending_changes FROM PUBLIC;

-- The write journal: every push to Salesforce, written by the proxy on a connection of its
-- own before the client's transaction commits. A push Salesforce accepted whose
-- transaction then did not commit (the proxy died between the two) is found here on
-- restart and repaired: its records are read again from Salesforce into the mirror.
CREATE TABLE sfpg.write_journal (
    id             bigserial PRIMARY KEY,
    org_name       text NOT NULL,
    -- The proxy session: client address and the process id the proxy gave the client.
    session        text NOT NULL,
    -- The client's transaction, whose fate pg_xact_status() tells.
    txid           xid8,
    -- [{operation, object, schema, table, row_id, sfid, fields}] as sent (sfid of a
    -- created record as Salesforce assigned it).
    records        jsonb NOT NULL,
    -- Salesforce's save results, or the error.
    response       jsonb,
    outcome        text NOT NULL CHECK (outcome IN ('pushed', 'refused', 'failed')),
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    salesforce_ms  integer NOT NULL,
    -- For a push Salesforce accepted: what became of its transaction.
    resolution     text CHECK (resolution IN ('committed', 'repaired')),
    resolved_at    timestamptz
);
CREATE INDEX write_journal_unresolved_idx ON sfpg.write_journal (id)
    WHERE outcome = 'pushed' AND resolution IS NULL;
COMMENT ON TABLE sfpg.write_journal IS
    'Every push of the sfpg proxy to Salesforce; unresolved pushes are repaired on restart.';
