-- A page of captured changes is taken in a fraction of the server's time (issue 25's
-- benchmark), whatever the planner knows of sfpg.pending_changes.
--
-- Of a row the transaction only updated, sfpg.take_pending_changes (V21) cut both images to
-- the columns the transaction changed in the row (and `id` and `sfid`). To find those it
-- joined the page's changes with themselves, a join the planner planned from the table's
-- statistics; the table is nearly always empty when analyzed, so with the estimate of one
-- row it could choose a nested loop: 1,000 x 1,000 comparisons a page of 1,000 rows, 200 of
-- the 264 ms the page took (backend CPU 200-218 µs a row taken). It also cut each image by
-- walking all its pairs (`jsonb_each`, 52 pairs a Contact) against the list.
--
-- Now each change is counted with its row's others by a window (one sort, no join), and a
-- row whose one change is an UPDATE has its images cut to that change's columns (and `id`
-- and `sfid`), each looked up in the image (`->`). A row changed more than once comes whole,
-- like a created or deleted row: the push cuts its images itself (`plan::compact`), and a
-- page of such rows is no larger than a page of created rows. Backend CPU a row taken, pages
-- of 1,000 of an UPDATE of one column of 5,000 Contact-like rows (52 columns), in one
-- database (`scripts/write-back-cost.py`): see docs/benchmarks.md.
--
-- Everything else of the function is V21's.

CREATE OR REPLACE FUNCTION sfpg.take_pending_changes(ticket text, max_rows integer DEFAULT NULL,
                                           after_table oid DEFAULT NULL, after_row bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me        xid8 := pg_current_xact_id_if_assigned();
    -- Below every row when there is no page before (OIDs start above 0).
    first_oid oid := coalesce(after_table, 0);
    first_row bigint := CASE WHEN after_table IS NULL THEN -9223372036854775808 ELSE after_row END;
    last_oid oid;
    last_row bigint;
    taken    text;
BEGIN
    IF NOT sfpg.push_ticket_valid(ticket) THEN
        RAISE EXCEPTION 'only the sfpg proxy may take captured changes'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Write mirrored tables through the sfpg proxy.';
    END IF;
    IF max_rows IS NOT NULL AND max_rows < 1 THEN
        RAISE EXCEPTION 'max_rows must be at least 1, not %', max_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The last of the next `max_rows` rows (LIMIT NULL is every row).
    SELECT k.table_oid, k.row_id INTO last_oid, last_row
      FROM (SELECT DISTINCT c.table_oid, c.row_id
              FROM sfpg.pending_changes c
             WHERE c.txid = me AND (c.table_oid, c.row_id) > (first_oid, first_row)
             ORDER BY c.table_oid, c.row_id
             LIMIT max_rows) k
     ORDER BY k.table_oid DESC, k.row_id DESC
     LIMIT 1;
    -- Every change of those rows: all rows up to the last, since earlier ones were taken
    -- (a change without a local id, which a mirrored table cannot make, goes with the first
    -- page rather than be left behind).
    -- (Two statements, each an index range: an OR of the two would scan the transaction's
    -- whole range, taken rows included, on every page.)
    WITH keyed AS (
        DELETE FROM sfpg.pending_changes c
         WHERE c.txid = me
           AND (c.table_oid, c.row_id) > (first_oid, first_row)
           AND (c.table_oid, c.row_id) <= (last_oid, last_row)
        RETURNING c.seq, c.schema_name, c.table_name, c.table_oid, c.operation, c.row_id,
                  c.old_row, c.new_row, c.changed
    ),
    unkeyed AS (
        DELETE FROM sfpg.pending_changes c
         WHERE after_table IS NULL AND c.txid = me AND c.row_id IS NULL
        RETURNING c.seq, c.schema_name, c.table_name, c.table_oid, c.operation, c.row_id,
                  c.old_row, c.new_row, c.changed
    ),
    deleted AS (SELECT * FROM keyed UNION ALL SELECT * FROM unkeyed),
    -- How many changes each row has in the page: no join of the page with itself, whose
    -- plan rested on estimates of a table that is always nearly empty.
    counted AS (
        SELECT d.*, count(*) OVER (PARTITION BY d.table_oid, d.row_id) AS changes
          FROM deleted d
    )
    -- A row whose one change is an UPDATE: of its images, the push reads the columns the
    -- change changed (and `id` and `sfid`), so only those are sent, each looked up in the
    -- image. Any other row is sent whole: created or deleted (its values are created; it is
    -- restored whole), or changed more than once (the push cuts its images itself).
    SELECT coalesce(json_agg(json_build_object(
               'seq', d.seq, 'schema_name', d.schema_name, 'table_name', d.table_name,
               'table_oid', d.table_oid::bigint, 'operation', d.operation, 'row_id', d.row_id,
               'old_row', CASE WHEN d.changes = 1 AND d.operation = 'UPDATE' THEN
                   (SELECT jsonb_object_agg(c, d.old_row -> c)
                      FROM unnest(d.changed || ARRAY['id', 'sfid']) c WHERE d.old_row ? c)
                   ELSE d.old_row END,
               'new_row', CASE WHEN d.changes = 1 AND d.operation = 'UPDATE' THEN
                   (SELECT jsonb_object_agg(c, d.new_row -> c)
                      FROM unnest(d.changed || ARRAY['id', 'sfid']) c WHERE d.new_row ? c)
                   ELSE d.new_row END,
               'changed', d.changed)
             ORDER BY d.seq), '[]')::text
      INTO taken
      FROM counted d;
    RETURN taken;
END
$$;
