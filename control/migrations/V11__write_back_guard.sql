-- The proxy's write-back keeps the mirror writer's version guard.
--
-- Every other path that writes a record into the mirror (the sync's pages, the journal's
-- repair) overwrites a row only with a copy of its record that is not older, by
-- SystemModstamp. sfpg.write_back (V8) wrote whatever the proxy read back. Now an element
-- of `rows` that carries `systemmodstamp` (a copy of the record as Salesforce holds it) is
-- written only when the row's own stamp is NULL or not newer. When the row is newer, the
-- element still sets the columns whose value is a provisional sfid (`~` and 17 digits):
-- those are Ids the push resolved, which must reach the row whatever the guard says, or a
-- provisional value would outlive its transaction. An element without `systemmodstamp`
-- (the read-back failed: the row's Id and resolved lookups only) is written as it is.

-- What of `copy` (one element of `rows`) a row whose current values are `mirror` takes.
CREATE FUNCTION sfpg.write_back_guard(mirror jsonb, copy jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN copy ->> 'systemmodstamp' IS NULL
          OR mirror ->> 'systemmodstamp' IS NULL
          OR (mirror ->> 'systemmodstamp')::timestamptz <= (copy ->> 'systemmodstamp')::timestamptz
        THEN copy
        ELSE coalesce(
            (SELECT jsonb_object_agg(c.key, c.value)
               FROM jsonb_each(copy) c
              WHERE c.key = 'id' OR (mirror ->> c.key) ~ '^~[0-9]{17}$'),
            '{}'::jsonb)
    END
$$;
REVOKE ALL ON FUNCTION sfpg.write_back_guard(jsonb, jsonb) FROM PUBLIC;

-- As in V8, with the guard applied to each element before it is written.
CREATE OR REPLACE FUNCTION sfpg.write_back(ticket text, schema_name text, table_name text, rows text)
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
    -- jsonb_populate_record(t, …) starts from the row itself: a key a row's element lacks
    -- (or the guard took out) keeps the column's value.
    EXECUTE format(
        'UPDATE %1$s AS t SET (%2$s) = (SELECT %3$s FROM (SELECT jsonb_populate_record(t,
                sfpg.write_back_guard(to_jsonb(t), r.j)) AS p) x)
           FROM (SELECT (e ->> ''id'')::bigint AS id, e AS j FROM jsonb_array_elements($1) e) r
          WHERE t.id = r.id',
        target, targets, sources)
    USING data;
    GET DIAGNOSTICS written = ROW_COUNT;
    PERFORM set_config('sfpg.origin', coalesce(previous, ''), true);
    RETURN written;
END
$$;
