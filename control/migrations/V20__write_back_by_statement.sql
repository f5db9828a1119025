-- The proxy's write-back and restore check their ticket once per call, not once per row
-- (issue 25's benchmark).
--
-- For each row sfpg.write_back (V19) wrote, PostgreSQL ran two more functions of sfpg's:
--   * sfpg.write_back_guard (V11), a SQL function with a pinned search_path, which is
--     therefore never inlined: a call, a GUC push and pop, and to_jsonb(t) of the whole row;
--   * the capture trigger sfpg.capture_change (V8), queued and fired for the row, which
--     checked the `push:` origin with sfpg.push_ticket_valid, which called
--     sfpg.push_ticket: two more such calls, a read of sfpg.origin_key and a SHA-256, with
--     push_ticket's query parsed and planned anew on every call.
-- And the columns to set were found by listing every key of every element. A 5,000-row
-- chunk of 52-column Contacts took 90 µs of the backend's CPU a row (docs/benchmarks.md).
--
-- Now (46 µs a row; what is left is parsing the JSON, jsonb_populate_record and the
-- UPDATE itself):
--   * the guard is a CASE in write_back's own UPDATE: the row's stamp is compared with the
--     element's directly; the rare newer row (keep only the provisional Ids the push
--     resolved) still reads the row as jsonb, for that row only;
--   * a column is set when an element has its key, which a path query answers from the
--     first element that has it;
--   * the capture trigger has a WHEN condition: it is not queued for a row written while
--     the origin is `push:…` and the current user may read sfpg.origin_key. Inside
--     write_back, restore_refused and event_write_back, which run as the control schema's
--     owner and set that origin only after checking the ticket, both hold, so their rows
--     pass without a call. Everywhere else the trigger runs as before, and checks the
--     origin as before.
--
-- Why this is as safe as the per-row check. Who could write a mirrored row uncaptured
-- before: whoever may read the key (it sets `sync:<key>`), and whoever holds the current
-- transaction's ticket. The new condition lets a row past only for a role that may read
-- the key, so no one new: a client role cannot read it (V7), and is the current user of a
-- statement either itself or, inside a SECURITY DEFINER function, that function's owner.
-- The only functions of a role that may read the key which a client may call and which
-- write a mirrored table are sfpg's write-back functions, which check the ticket first.
-- The condition is stored as parsed, with the OIDs of `current_setting`, `LIKE`,
-- `has_table_privilege` and sfpg.origin_key bound when the trigger is created: no
-- search_path, temporary object or setting of a session changes what it calls. A NULL
-- anywhere counts as "run the trigger".

-- (Re)creates the capture and TRUNCATE triggers of a mirrored table: the one place their
-- definition is written (sfpg_control::capture::install_capture_trigger calls it). Runs
-- with its caller's rights: creating a trigger needs the table's owner.
CREATE FUNCTION sfpg.install_capture_triggers(target regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER sfpg_capture AFTER INSERT OR UPDATE OR DELETE ON %s
             FOR EACH ROW
             WHEN (NOT COALESCE(pg_catalog.current_setting(''sfpg.origin'', true) LIKE ''push:%%''
                                AND pg_catalog.has_table_privilege(''sfpg.origin_key''::pg_catalog.regclass, ''SELECT''),
                                false))
             EXECUTE FUNCTION sfpg.capture_change()',
        target);
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER sfpg_refuse_truncate BEFORE TRUNCATE ON %s
             FOR EACH STATEMENT EXECUTE FUNCTION sfpg.refuse_truncate()',
        target);
END
$$;

-- The mirrored tables there are.
DO $migration$
DECLARE
    mirrored regclass;
BEGIN
    FOR mirrored IN
        SELECT tgrelid::regclass FROM pg_catalog.pg_trigger
         WHERE tgname = 'sfpg_capture' AND tgfoid = 'sfpg.capture_change()'::regprocedure
    LOOP
        PERFORM sfpg.install_capture_triggers(mirrored);
    END LOOP;
END
$migration$;

-- As in V19, with the guard (V11) written into the UPDATE.
CREATE OR REPLACE FUNCTION sfpg.write_back(ticket text, schema_name text, table_name text, rows text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target   regclass := to_regclass(quote_ident(schema_name) || '.' || quote_ident(table_name));
    data     jsonb := rows::jsonb;
    previous text := current_setting('sfpg.origin', true);
    targets  text;
    sources  text;
    guarded  text := 'r.j';
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
    -- The columns any row sets, in column order: for each column, whether an element has
    -- its key, which a path query answers from the first element that has it (V19 listed
    -- every key of every element).
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('(s.p).%I', a.attname), ', ' ORDER BY a.attnum)
      INTO targets, sources
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id'
       AND data @? ('lax $[*].' || to_jsonb(a.attname::text)::text)::jsonpath;
    IF targets IS NULL THEN
        RETURN 0;
    END IF;
    -- The version guard: an element that carries `systemmodstamp` is written only when the
    -- row's own stamp is NULL or not newer; else only its `id` and the columns whose value
    -- in the row is a provisional sfid (Ids the push resolved). A table without the column
    -- has no stamp to guard.
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = target AND attname = 'systemmodstamp' AND NOT attisdropped) THEN
        guarded := $guard$CASE
            WHEN r.j ->> 'systemmodstamp' IS NULL OR t.systemmodstamp IS NULL
              OR t.systemmodstamp::timestamptz <= (r.j ->> 'systemmodstamp')::timestamptz
            THEN r.j
            ELSE coalesce(
                (SELECT jsonb_object_agg(c.key, c.value)
                   FROM jsonb_each(r.j) c
                  WHERE c.key = 'id' OR (to_jsonb(t) ->> c.key) ~ '^~[0-9]{17}$'),
                '{}'::jsonb)
        END$guard$;
    END IF;
    PERFORM set_config('sfpg.origin', 'push:' || ticket, true);
    -- jsonb_populate_record(t, …) starts from the row itself: a key a row's element lacks
    -- (or the guard took out) keeps the column's value.
    EXECUTE format(
        'UPDATE %1$s AS t SET (%2$s) = (SELECT %3$s FROM (SELECT jsonb_populate_record(t, %4$s) AS p OFFSET 0) s)
           FROM (SELECT (e ->> ''id'')::bigint AS id, e AS j FROM jsonb_array_elements($1) e) r
          WHERE t.id = r.id',
        target, targets, sources, guarded)
    USING data;
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM set_config('sfpg.origin', coalesce(previous, ''), true);
    RETURN written;
END
$$;

DROP FUNCTION sfpg.write_back_guard(jsonb, jsonb);
