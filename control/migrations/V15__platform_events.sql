-- Platform events (issue 24).
--
-- Each enabled platform event object (`Order_Event__e`) of an org is one subscription to
-- `/event/<Name>`, with a checkpoint of its own (replay ids are per topic), saved in the
-- same transaction as the rows it inserted, so that a crash neither loses nor doubles an
-- event. `events` counts the events inserted; `state` is for `sfpg status`.
CREATE TABLE sfpg.event_streams (
    org_name         text NOT NULL REFERENCES sfpg.orgs (name) ON DELETE CASCADE,
    event_name       text NOT NULL,
    replay_id        bigint,
    replay_saved_at  timestamptz,
    state            text NOT NULL DEFAULT 'down' CHECK (state IN ('connected', 'down')),
    state_reason     text,
    state_at         timestamptz NOT NULL DEFAULT now(),
    last_event_at    timestamptz,
    events           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_name, event_name)
);

-- An event, once published, is immutable: its table takes INSERTs (through the proxy,
-- which publishes them) and nothing else. The sync (retention, filling in a delivered
-- event) and the proxy's write-back pass; whether their origin is genuine is the capture
-- trigger's to check (sfpg.capture_change, which runs after this one and refuses a forged
-- origin with 25006). Everyone else gets 0A000 at the statement.
CREATE FUNCTION sfpg.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    origin text := current_setting('sfpg.origin', true);
BEGIN
    IF origin LIKE 'sync:%' OR origin LIKE 'push:%' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'cannot % table %.%: platform events are immutable', lower(TG_OP), TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported',
              SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
              DETAIL = 'Salesforce publishes an event once and never changes or deletes it; the table holds what the event bus delivered.',
              HINT = 'Publish a new event with INSERT through the sfpg proxy. Old rows are deleted by the sync after --event-table-retention.';
END
$$;

-- The proxy's write-back of published events: each element of `rows` names a row the
-- push inserted (`id`), the event's Id (`sfid`) and its `eventuuid` (the save result's
-- OPERATION_ENQUEUED message, the EventUuid the bus delivers). If the sync has already
-- inserted the delivered event (it can arrive before the proxy's transaction commits),
-- the proxy's row takes it over: the delivered row's replay id, date, publisher and
-- values, as Salesforce delivered them, and the delivered row goes. A delivered row the
-- sync has inserted but not yet committed is waited for (the unique index on eventuuid),
-- then taken over. So one event is one row, whichever comes first.
CREATE FUNCTION sfpg.event_write_back(ticket text, schema_name text, table_name text, rows text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target    regclass := to_regclass(quote_ident(schema_name) || '.' || quote_ident(table_name));
    previous  text := current_setting('sfpg.origin', true);
    element   jsonb;
    delivered jsonb;
    targets   text;
    sources   text;
    attempts  int;
    written   bigint := 0;
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
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('p.%I', a.attname), ', ' ORDER BY a.attnum)
      INTO targets, sources
      FROM pg_attribute a
     WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'id';
    PERFORM set_config('sfpg.origin', 'push:' || ticket, true);
    FOR element IN SELECT e FROM jsonb_array_elements(rows::jsonb) e LOOP
        attempts := 0;
        LOOP
            attempts := attempts + 1;
            BEGIN
                EXECUTE format('DELETE FROM %s t WHERE t.eventuuid = $1 AND t.id <> $2 RETURNING to_jsonb(t)', target)
                   INTO delivered
                  USING element ->> 'eventuuid', (element ->> 'id')::bigint;
                IF delivered IS NULL THEN
                    EXECUTE format('UPDATE %s SET sfid = $1, eventuuid = $2 WHERE id = $3', target)
                      USING element ->> 'sfid', element ->> 'eventuuid', (element ->> 'id')::bigint;
                ELSE
                    EXECUTE format(
                        'UPDATE %1$s AS t SET (%2$s) = (SELECT %3$s FROM jsonb_populate_record(t, $1) p) WHERE t.id = $2',
                        target, targets, sources)
                      USING (delivered - 'id') || jsonb_build_object('sfid', element ->> 'sfid'),
                            (element ->> 'id')::bigint;
                END IF;
                EXIT;
            EXCEPTION WHEN unique_violation THEN
                -- The sync committed the delivered event meanwhile: take it over.
                IF attempts >= 3 THEN
                    RAISE;
                END IF;
            END;
        END LOOP;
        written := written + 1;
    END LOOP;
    PERFORM set_config('sfpg.origin', coalesce(previous, ''), true);
    RETURN written;
END
$$;
-- Like sfpg.write_back, called on the client's connection by the proxy (the ticket is the check).
GRANT EXECUTE ON FUNCTION sfpg.event_write_back(text, text, text, text) TO PUBLIC;
