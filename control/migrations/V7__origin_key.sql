-- The sync origin, and taking captured changes, now need a key that only sfpg holds.
--
-- Before, `sfpg.origin = 'sync'` told the triggers a write was what Salesforce already held,
-- and any role could set it: a client, through the proxy or not, could write a mirrored
-- table without the change reaching Salesforce. Likewise any role could call
-- sfpg.take_pending_changes() and commit what it had captured without a push.
--
-- Now the sync origin is `sync:<key>` and taking needs the key. The key is random, kept in
-- sfpg.origin_key, which only the control schema's owner can read: the sync and the
-- proxy read it with the owner's credentials; client roles cannot. The capture trigger
-- runs for every row the sync writes, so it does not read the table: it compares a
-- SHA-256 of the origin with the key's, written into the function as a literal (a hash
-- anyone may read, of a key no one can guess).

CREATE TABLE sfpg.origin_key (
    key text NOT NULL
);
-- 244 random bits from the server's strong random source.
INSERT INTO sfpg.origin_key
SELECT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
REVOKE ALL ON sfpg.origin_key FROM PUBLIC;
COMMENT ON TABLE sfpg.origin_key IS
    'The key of the sfpg sync origin; readable only by the control schema''s owner.';

-- The two trigger functions, with the digest of the sync origin written in.
DO $migration$
DECLARE
    digest text := encode(sha256(convert_to('sync:' || (SELECT key FROM sfpg.origin_key), 'UTF8')), 'hex');
BEGIN
    EXECUTE format($function$
CREATE OR REPLACE FUNCTION sfpg.capture_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    origin  text := current_setting('sfpg.origin', true);
    changed text[];
BEGIN
    IF origin IS DISTINCT FROM 'proxy' THEN
        IF origin LIKE 'sync:%%' AND encode(sha256(convert_to(origin, 'UTF8')), 'hex') = %1$L THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'cannot %% table %%.%%: it mirrors Salesforce and is written through the sfpg proxy',
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
$body$;
$function$, digest);
    EXECUTE format($function$
CREATE OR REPLACE FUNCTION sfpg.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    origin  text := current_setting('sfpg.origin', true);
BEGIN
    IF origin LIKE 'sync:%%' AND encode(sha256(convert_to(origin, 'UTF8')), 'hex') = %1$L THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'cannot truncate table %%.%%: it mirrors Salesforce', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported',
              SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'TRUNCATE would empty the mirror without deleting anything in Salesforce.',
              HINT = 'To delete the records in Salesforce, DELETE them through the sfpg proxy; to stop mirroring the object, disable it with sfpg objects disable.';
END
$body$;
$function$, digest);
END
$migration$;

-- Taking needs the key: only the proxy, which pushes what it takes, may take.
DROP FUNCTION sfpg.take_pending_changes();
CREATE FUNCTION sfpg.take_pending_changes(key text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    taken text;
BEGIN
    IF key IS DISTINCT FROM (SELECT k.key FROM sfpg.origin_key k) THEN
        RAISE EXCEPTION 'only the sfpg proxy may take captured changes'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Write mirrored tables through the sfpg proxy.';
    END IF;
    WITH deleted AS (
        DELETE FROM sfpg.pending_changes
         WHERE txid = pg_current_xact_id_if_assigned()
        RETURNING seq, schema_name, table_name, table_oid::bigint AS table_oid, operation, row_id,
                  old_row, new_row, changed
    )
    SELECT coalesce(json_agg(deleted ORDER BY seq), '[]')::text INTO taken FROM deleted;
    RETURN taken;
END
$$;

-- Whether the current transaction captured anything, and where first: what a proxy without
-- the key (it has no control database) needs to refuse the commit by name. It shows a
-- caller its own transaction only.
CREATE FUNCTION sfpg.first_pending_change() RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT json_build_object('schema', schema_name, 'table', table_name)::text
      FROM sfpg.pending_changes
     WHERE txid = pg_current_xact_id_if_assigned()
     ORDER BY seq
     LIMIT 1
$$;
