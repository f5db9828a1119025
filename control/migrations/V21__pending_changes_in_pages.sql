-- The proxy takes a transaction's captured changes a page of rows at a time (issue 25).
--
-- sfpg.take_pending_changes(ticket) (V8) returned every change of the transaction as one
-- JSON text, and the proxy held that text and its parse at once: about 20 KB per changed
-- Contact (old and new image), 2 GB for an UPDATE of 100,000 rows. Now
-- sfpg.take_pending_changes(ticket, max_rows) takes the changes of at most `max_rows` rows
-- (by table and local id), every change of each, oldest first; the next call takes the next
-- rows, since the taken ones are deleted. A row's changes never straddle two pages, so the
-- proxy can reduce each page to the net change of each row (and the images to what that net
-- change needs) before it takes the next. With `max_rows` NULL it takes everything, as the
-- one-argument function did, which it replaces (a call with one argument still works).
--
-- The rows are chosen off an index on (txid, table_oid, row_id), which also serves every
-- other lookup by transaction, so the index on txid alone goes.

CREATE INDEX pending_changes_txid_row_idx ON sfpg.pending_changes (txid, table_oid, row_id);
DROP INDEX sfpg.pending_changes_txid_idx;

DROP FUNCTION sfpg.take_pending_changes(text);
CREATE FUNCTION sfpg.take_pending_changes(ticket text, max_rows integer DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me       xid8 := pg_current_xact_id_if_assigned();
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
             WHERE c.txid = me AND c.row_id IS NOT NULL
             ORDER BY c.table_oid, c.row_id
             LIMIT max_rows) k
     ORDER BY k.table_oid DESC, k.row_id DESC
     LIMIT 1;
    -- Every change of those rows: all rows up to the last, since earlier ones were taken
    -- (a change without a local id, which a mirrored table cannot make, goes with the first
    -- page rather than be left behind).
    WITH deleted AS (
        DELETE FROM sfpg.pending_changes c
         WHERE c.txid = me
           AND (c.row_id IS NULL OR (c.table_oid, c.row_id) <= (last_oid, last_row))
        RETURNING c.seq, c.schema_name, c.table_name, c.table_oid::bigint AS table_oid,
                  c.operation, c.row_id, c.old_row, c.new_row, c.changed
    )
    SELECT coalesce(json_agg(deleted ORDER BY seq), '[]')::text INTO taken FROM deleted;
    RETURN taken;
END
$$;
