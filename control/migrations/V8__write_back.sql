-- The proxy's write-back runs in functions of the control schema's owner, and the origin key
-- never reaches a client's connection.
--
-- Before, the proxy set `sfpg.origin = 'sync:<key>'` on the client's own connection and
-- wrote back with statements that named `set_config`, `jsonb` and `=` unqualified: a client
-- role could shadow any of them (a domain in pg_temp, a function or operator in a schema of
-- its own first on its search_path), read the origin while it was in force, and then write
-- the mirror directly without the change reaching Salesforce.
--
-- Now:
--   * the proxy asks for a *push ticket* on a connection of its own: a digest of the key and
--     the client transaction's id (sfpg.push_ticket, owner only). A ticket is good for that
--     one transaction, which the proxy commits or rolls back right after the push;
--   * taking captured changes (sfpg.take_pending_changes) and writing back
--     (sfpg.write_back) need the ticket, and run as the owner with a pinned search_path,
--     every name resolved in pg_catalog or qualified: no object a client can create is
--     looked up, and no code of the client's runs while they work;
--   * sfpg.write_back sets the origin `push:<ticket>` for its own UPDATE only and puts the
--     previous value back before it returns; the capture trigger lets a `push:` origin
--     through only with the ticket of the current transaction;
--   * the key itself is only ever read on the owner's connections (the sync, the repair),
--     and sfpg.rotate_origin_key() replaces it.

-- The ticket of transaction `txid`: only the owner (the proxy's own connection) may mint
-- one. The key is fixed-length and the transaction id is digits, so no other input
-- produces the same digest text.
CREATE FUNCTION sfpg.push_ticket(txid xid8) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT encode(sha256(convert_to(k.key || ':' || txid::text, 'UTF8')), 'hex')
      FROM sfpg.origin_key k
$$;
REVOKE ALL ON FUNCTION sfpg.push_ticket(xid8) FROM PUBLIC;

-- Whether `ticket` is the current transaction's. Called by the functions below, which run
-- as the owner; no one else may call it.
CREATE FUNCTION sfpg.push_ticket_valid(ticket text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(ticket = sfpg.push_ticket(pg_current_xact_id_if_assigned()), false)
$$;
REVOKE ALL ON FUNCTION sfpg.push_ticket_valid(text) FROM PUBLIC;

-- (Re)creates the two trigger functions with the digest of the current key written in. One
-- place, for this migration and for every rotation of the key.
CREATE FUNCTION sfpg.install_origin_checks() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $install$
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
        -- The sync, and the repair: the key's digest, compared without reading a table,
        -- since this runs for every row the sync writes.
        IF origin LIKE 'sync:%%' AND encode(sha256(convert_to(origin, 'UTF8')), 'hex') = %1$L THEN
            RETURN NULL;
        END IF;
        -- The proxy's write-back, inside sfpg.write_back: this transaction's ticket.
        IF origin LIKE 'push:%%' AND sfpg.push_ticket_valid(substr(origin, 6)) THEN
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
$install$;
REVOKE ALL ON FUNCTION sfpg.install_origin_checks() FROM PUBLIC;
SELECT sfpg.install_origin_checks();

-- A new random key (244 bits from the server's strong random source), and the trigger
-- functions that check it. Owner only: `sfpg rotate-origin-key`.
CREATE FUNCTION sfpg.rotate_origin_key() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE sfpg.origin_key
       SET key = replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
    PERFORM sfpg.install_origin_checks();
END
$$;
REVOKE ALL ON FUNCTION sfpg.rotate_origin_key() FROM PUBLIC;

-- Taking the captured changes needs this transaction's ticket.
DROP FUNCTION sfpg.take_pending_changes(text);
CREATE FUNCTION sfpg.take_pending_changes(ticket text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    taken text;
BEGIN
    IF NOT sfpg.push_ticket_valid(ticket) THEN
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

-- Writes what Salesforce set into the mirror rows a push changed: `rows` is a JSON array of
-- objects, each with the row's local `id` and the columns to set; a column a row's object
-- lacks keeps its value. Runs as the owner, so the client's column grants do not matter
-- (it may write the columns it changed; the write-back also sets sfid, SystemModstamp and
-- the fields Salesforce computes). Only tables with sfpg's capture trigger are written.
-- Returns the number of rows written.
CREATE FUNCTION sfpg.write_back(ticket text, schema_name text, table_name text, rows text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target   regclass := to_regclass(quote_ident(schema_name) || '.' || quote_ident(table_name));
    data     jsonb := rows::jsonb;
    previous text := current_setting('sfpg.origin', true);
    targets  text;
    sources  text;
    written  bigint;
BEGIN
    IF NOT sfpg.push_ticket_valid(ticket) THEN
        RAISE EXCEPTION 'only the sfpg proxy may write back a push'
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
    -- The columns any row sets, in column order.
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('(p).%I', a.attname), ', ' ORDER BY a.attnum)
      INTO targets, sources
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id'
       AND EXISTS (SELECT 1 FROM jsonb_array_elements(data) e WHERE e ? a.attname);
    IF targets IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('sfpg.origin', 'push:' || ticket, true);
    -- jsonb_populate_record(t, …) starts from the row itself: a key a row's object lacks
    -- keeps the column's value.
    EXECUTE format(
        'UPDATE %1$s AS t SET (%2$s) = (SELECT %3$s FROM (SELECT jsonb_populate_record(t, r.j) AS p) x)
           FROM (SELECT (e ->> ''id'')::bigint AS id, e AS j FROM jsonb_array_elements($1) e) r
          WHERE t.id = r.id',
        target, targets, sources)
    USING data;
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM set_config('sfpg.origin', coalesce(previous, ''), true);
    RETURN written;
END
$$;
GRANT EXECUTE ON FUNCTION sfpg.write_back(text, text, text, text) TO PUBLIC;
