-- A bulk push's read-back is written into the mirror by COPY into a staging table and one
-- UPDATE … FROM (issue 25's benchmark), rather than as JSON through sfpg.write_back.
--
-- Of the 54-74 µs of backend CPU a Contact-like row (52 columns) cost in sfpg.write_back
-- (V20), 24 µs went to parsing the statement's JSON text into jsonb and 16 µs to
-- jsonb_populate_record; the row's own UPDATE was the rest. COPY hands each value to its
-- type's input function directly: the staging table, its COPY and the UPDATE … FROM cost
-- 26-30 µs a row for the same 5,000 rows (scripts/write-back-cost.py), and the bulk
-- bench's write-back of 100,000 Contacts went from 10.6 to 2.7 s (docs/benchmarks.md).
-- The values are the same text either way (the read-back's CSV cells), taken by the same
-- input functions.
--
-- Two functions, both the control schema's owner's and both checking the push ticket, as
-- sfpg.write_back does:
--   * sfpg.write_back_staging creates the staging table: a temporary table (this session
--     only, dropped at the latest at commit) of the mirrored table's columns named, owned
--     by the control schema's owner, so that a client role needs no TEMPORARY privilege;
--     INSERT on it is granted to PUBLIC, which reaches only this session (PostgreSQL
--     refuses every access to another session's temporary tables). Its name is random:
--     nothing a client made beforehand can stand in its place.
--   * the proxy COPYs the rows into it, on the client's connection, between the two calls:
--     the client sends nothing meanwhile (the proxy holds the connection during COMMIT).
--   * sfpg.write_back_staged writes them into the mirrored table under write_back's version
--     guard, uncaptured (origin `push:<ticket>`, as V20), and drops the staging table. It
--     takes only a staging table of its own making: temporary, in this session's temporary
--     schema, owned by the function's owner, named as the first function names it.
--
-- The guard, as V20's: a staged row that carries `systemmodstamp` is written only when the
-- row's own stamp is NULL or not newer; otherwise only the columns whose value in the row
-- is a provisional sfid (`~` and 17 digits: Ids the push resolved) take the staged value.
-- Every column staged is set (a NULL sets NULL): the proxy stages only columns every row
-- carries, and writes the rest as JSON.

-- The mirrored table a write-back of push `ticket` writes, refused unless the ticket is
-- this transaction's and the table is mirrored: the checks sfpg.write_back makes (V8-V20),
-- once for the two functions below, which call it as their owner.
CREATE FUNCTION sfpg.write_back_target(ticket text, schema_name text, table_name text)
RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target regclass := to_regclass(quote_ident(schema_name) || '.' || quote_ident(table_name));
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
    RETURN target;
END
$$;
REVOKE ALL ON FUNCTION sfpg.write_back_target(text, text, text) FROM PUBLIC;

CREATE FUNCTION sfpg.write_back_staging(ticket text, schema_name text, table_name text, columns text[])
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target  regclass := sfpg.write_back_target(ticket, schema_name, table_name);
    -- gen_random_uuid, not random(): a session can seed random() (setseed) and so foresee
    -- the name, and make a table of its own under it first.
    staging text := 'sfpg_write_back_' || replace(gen_random_uuid()::text, '-', '');
    missing text;
BEGIN
    IF columns IS NULL OR NOT 'id' = ANY (columns) THEN
        RAISE EXCEPTION 'a write-back stages the rows'' id'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c INTO missing
      FROM unnest(columns) c
     WHERE c IS NULL OR NOT EXISTS (
               SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = target AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'column % is not a column of %.%', coalesce(quote_ident(missing), 'NULL'), schema_name, table_name
            USING ERRCODE = 'undefined_column';
    END IF;
    EXECUTE format('CREATE TEMPORARY TABLE %I ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA',
                   staging,
                   (SELECT string_agg(format('%I', c), ', ' ORDER BY n) FROM unnest(columns) WITH ORDINALITY u(c, n)),
                   target);
    -- The key also keeps sfpg.write_back_staged's join linear whatever the planner
    -- believes of the mirrored table (below).
    EXECUTE format('ALTER TABLE pg_temp.%I ADD PRIMARY KEY (id)', staging);
    EXECUTE format('GRANT INSERT ON pg_temp.%I TO PUBLIC', staging);
    RETURN 'pg_temp.' || quote_ident(staging);
END
$$;
GRANT EXECUTE ON FUNCTION sfpg.write_back_staging(text, text, text, text[]) TO PUBLIC;

CREATE FUNCTION sfpg.write_back_staged(ticket text, schema_name text, table_name text, staging text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
-- Neither a sequential scan nor a nested loop: with the rows to find given by key
-- (below), reading the whole table is never the better plan, and a nested loop, chosen
-- when the planner believes one side has a row or none, may read the other side whole
-- once for each of its rows. A hash or merge join of the two index scans is linear in
-- the rows staged, whatever the statistics say.
SET enable_seqscan = off SET enable_nestloop = off AS $$
DECLARE
    target   regclass := sfpg.write_back_target(ticket, schema_name, table_name);
    staged   regclass := to_regclass(staging);
    previous text := current_setting('sfpg.origin', true);
    ok       text := 'true';
    sets     text;
    written  bigint;
    ids      bigint[];
BEGIN
    IF staged IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_class
         WHERE oid = staged AND relpersistence = 't' AND relkind = 'r'
           AND relnamespace = pg_my_temp_schema()
           AND relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
           AND relname LIKE 'sfpg\_write\_back\_%'
    ) THEN
        RAISE EXCEPTION 'no staged write-back %', staging
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- Both the staged rows and the table have a stamp: the guard applies.
    IF (SELECT count(*) = 2 FROM pg_attribute
         WHERE attrelid IN (target, staged) AND attname = 'systemmodstamp' AND NOT attisdropped) THEN
        ok := '(s.systemmodstamp IS NULL OR t.systemmodstamp IS NULL OR t.systemmodstamp <= s.systemmodstamp)';
    END IF;
    SELECT string_agg(format('%1$I = CASE WHEN %2$s OR t.%1$I::text ~ ''^~[0-9]{17}$'' THEN s.%1$I ELSE t.%1$I END',
                             a.attname, ok),
                      ', ' ORDER BY a.attnum)
      INTO sets
      FROM pg_attribute a
     WHERE a.attrelid = staged AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id';
    IF sets IS NOT NULL THEN
        -- The mirrored table's rows are found by their keys (`t.id = ANY`), both sides of
        -- the join by index: the table's statistics may say it is empty while the
        -- transaction has just written 100,000 rows into it (a table analyzed when empty,
        -- or a bulk \copy), and a plain join was then planned as a nested loop scanning
        -- the staged rows once for each row of the table: 88 s a statement of 5,000 rows
        -- in the bulk bench; with an index on each side, the nested loop read the staging
        -- table's index whole for each row (a join filter, not an index condition): 2.5 s.
        EXECUTE format('SELECT array_agg(id) FROM %s', staged) INTO ids;
        PERFORM set_config('sfpg.origin', 'push:' || ticket, true);
        EXECUTE format('UPDATE %s AS t SET %s FROM %s AS s WHERE t.id = ANY ($1) AND t.id = s.id',
                       target, sets, staged)
            USING ids;
        GET DIAGNOSTICS written = ROW_COUNT;
        PERFORM set_config('sfpg.origin', coalesce(previous, ''), true);
    END IF;
    EXECUTE format('DROP TABLE %s', staged);
    RETURN coalesce(written, 0);
END
$$;
GRANT EXECUTE ON FUNCTION sfpg.write_back_staged(text, text, text, text) TO PUBLIC;
