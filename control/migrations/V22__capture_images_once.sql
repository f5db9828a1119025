-- The capture trigger builds each row's images once (issue 25's benchmark).
--
-- For an UPDATE, sfpg.capture_change (V8) built `to_jsonb(NEW)` three times and
-- `to_jsonb(OLD)` twice, and found the changed columns by expanding both images into sets
-- of key and value (`jsonb_each`) joined with each other and with pg_attribute: for a row of
-- 52 columns, most of the cost of a client's UPDATE through the proxy (180 µs of backend
-- CPU a row for 5,000 Contact-like rows, against 14-16 µs for the UPDATE itself;
-- scripts/write-back-cost.py). Now each image is built once, an unchanged row is seen by
-- comparing the two, and the changed columns are the table's columns whose values differ
-- between the images, read off them by key (124-128 µs a row). What is recorded is the same: the same images, the same changed columns in column
-- order, nothing for an UPDATE that changes nothing. INSERT and DELETE build their image
-- once too.
--
-- The trigger functions are (re)created by sfpg.install_origin_checks (V8), with the
-- origin key's digest written in; it is replaced here with the new body (the origin checks
-- unchanged) and run, as a key rotation runs it.

CREATE OR REPLACE FUNCTION sfpg.install_origin_checks() RETURNS void
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
    old_image jsonb;
    new_image jsonb;
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
        -- Each image once; the changed columns read off both, in column order.
        old_image := to_jsonb(OLD);
        new_image := to_jsonb(NEW);
        IF new_image = old_image THEN
            -- Nothing changed (UPDATE … SET x = x): nothing to push.
            RETURN NULL;
        END IF;
        SELECT array_agg(a.attname::text ORDER BY a.attnum)
          INTO changed
          FROM pg_attribute a
         WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
           AND (new_image -> a.attname::text) IS DISTINCT FROM (old_image -> a.attname::text);
        INSERT INTO sfpg.pending_changes
            (schema_name, table_name, table_oid, operation, row_id, old_row, new_row, changed)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, TG_OP, (new_image ->> 'id')::bigint,
                old_image, new_image, changed);
    ELSIF TG_OP = 'INSERT' THEN
        new_image := to_jsonb(NEW);
        INSERT INTO sfpg.pending_changes
            (schema_name, table_name, table_oid, operation, row_id, new_row)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, TG_OP, (new_image ->> 'id')::bigint,
                new_image);
    ELSE
        old_image := to_jsonb(OLD);
        INSERT INTO sfpg.pending_changes
            (schema_name, table_name, table_oid, operation, row_id, old_row)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_RELID, TG_OP, (old_image ->> 'id')::bigint,
                old_image);
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
