-- The proxy takes a transaction's captured changes a page of rows at a time (issue 25).
--
-- sfpg.take_pending_changes(ticket) (V8) returned every change of the transaction as one
-- JSON text, and the proxy held that text and its parse at once: about 20 KB per changed
-- Contact (old and new image), 2 GB for an UPDATE of 100,000 rows. Now
-- sfpg.take_pending_changes(ticket, max_rows) takes the changes of at most `max_rows` rows
-- (by table and local id), every change of each, oldest first; the next call, given the
-- last row of the page before (`after_table`, `after_row`), takes the next rows. A row's
-- changes never straddle two pages, so the proxy can reduce each page to the net change of
-- each row (and the images to what that net change needs) before it takes the next. Of a
-- row the transaction only updated, the images come with the columns it changed (and `id`
-- and `sfid`) only: all the push reads of them, and a twentieth of the text for one column
-- of a 52-column Contact. With `max_rows` NULL it takes everything, as the one-argument
-- function did, which it replaces (a call with one argument still works).
--
-- The rows are chosen off an index on (txid, table_oid, row_id), which also serves every
-- other lookup by transaction, so the index on txid alone goes. Each page starts after the
-- last row of the one before: the index entries of the changes already taken stay until the
-- transaction ends (their deletion is not yet visible to anyone else), and a scan from the
-- start of the transaction's range would step over all of them again, page after page (13 s
-- for the 100 pages of an UPDATE of 100,000 rows).

CREATE INDEX pending_changes_txid_row_idx ON sfpg.pending_changes (txid, table_oid, row_id);
DROP INDEX sfpg.pending_changes_txid_idx;

DROP FUNCTION sfpg.take_pending_changes(text);
CREATE FUNCTION sfpg.take_pending_changes(ticket text, max_rows integer DEFAULT NULL,
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
    -- Rows the transaction only updated: of their images, the push reads the columns the
    -- transaction changed in them (and `id` and `sfid`), so only those are sent. A row it
    -- created or deleted is sent whole (its values are created; it is restored whole).
    only_updated AS (
        SELECT table_oid, row_id FROM deleted
         GROUP BY table_oid, row_id
        HAVING bool_and(operation = 'UPDATE')
    ),
    kept AS (
        SELECT d.table_oid, d.row_id, array_agg(DISTINCT col) || ARRAY['id', 'sfid'] AS keep
          FROM deleted d JOIN only_updated USING (table_oid, row_id)
          CROSS JOIN LATERAL unnest(d.changed) col
         GROUP BY d.table_oid, d.row_id
    )
    SELECT coalesce(json_agg(json_build_object(
               'seq', d.seq, 'schema_name', d.schema_name, 'table_name', d.table_name,
               'table_oid', d.table_oid::bigint, 'operation', d.operation, 'row_id', d.row_id,
               'old_row', CASE WHEN k.keep IS NULL THEN d.old_row ELSE
                   (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(d.old_row) e
                     WHERE e.key = ANY (k.keep)) END,
               'new_row', CASE WHEN k.keep IS NULL THEN d.new_row ELSE
                   (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(d.new_row) e
                     WHERE e.key = ANY (k.keep)) END,
               'changed', d.changed)
             ORDER BY d.seq), '[]')::text
      INTO taken
      FROM deleted d LEFT JOIN kept k USING (table_oid, row_id);
    RETURN taken;
END
$$;
