-- The capture trigger finds an UPDATE's changed columns without reading the catalog
-- (issue 25's benchmark).
--
-- V22 read them off the two images by the table's columns in pg_attribute, one catalog
-- scan and 104 key lookups a row: 60 of the 126 µs of backend CPU a captured row cost for
-- an UPDATE of 5,000 Contact-like rows (52 columns; scripts/write-back-cost.py, a variant
-- of the function without that query: 66 µs). Now they are the new image's pairs whose
-- value differs from the old image's under the same key: 88 µs a row. The images hold the
-- same columns (the row's, dropped ones left out), so the same columns are found; their
-- order is now the images' (jsonb's: shorter names first, then bytewise) instead of the
-- table's, which no reader of `changed` depends on (the take cuts images by it, the proxy
-- plans the fields it names).
--
-- Everything else of the function is V22's. As there, it is replaced through
-- sfpg.install_origin_checks (the origin key's digest is written into it), which is run.

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
        -- Each image once; the changed columns read off the new image's own pairs.
        old_image := to_jsonb(OLD);
        new_image := to_jsonb(NEW);
        IF new_image = old_image THEN
            -- Nothing changed (UPDATE … SET x = x): nothing to push.
            RETURN NULL;
        END IF;
        SELECT array_agg(n.key)
          INTO changed
          FROM jsonb_each(new_image) n
         WHERE n.value IS DISTINCT FROM (old_image -> n.key);
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
