-- Change Data Capture (issue 23).
--
-- Whether an org streams its changes: on by default; `sfpg org set-cdc NAME off` turns it
-- off, and a running sync learns of it at once (the trigger below).
ALTER TABLE sfpg.orgs
    ADD COLUMN cdc_enabled boolean NOT NULL DEFAULT true;

-- One org's stream (one subscription to /data/ChangeEvents):
--   replay_id        the last event applied, saved in the same transaction as its rows, so
--                    that a crash neither loses nor doubles an event;
--   replay_saved_at  when it was saved (the checkpoint's age against the retention);
--   commit_at        that event's commitTimestamp;
--   state            connected, catching_up (after a gap, an expired replay id or a start
--                    without a checkpoint), or down (with state_reason);
--   last_lag_ms      the mirror's commit less commitTimestamp, for the last transaction;
--   events, echoes   events applied, and of those the ones sfpg's own pushes caused;
--   gaps             GAP_* and GAP_OVERFLOW events met.
CREATE TABLE sfpg.streams (
    org_name         text PRIMARY KEY REFERENCES sfpg.orgs (name) ON DELETE CASCADE,
    replay_id        bigint,
    replay_saved_at  timestamptz,
    commit_at        timestamptz,
    state            text NOT NULL DEFAULT 'down'
                     CHECK (state IN ('connected', 'catching_up', 'down')),
    state_reason     text,
    state_at         timestamptz NOT NULL DEFAULT now(),
    last_event_at    timestamptz,
    last_lag_ms      bigint,
    events           bigint NOT NULL DEFAULT 0,
    echoes           bigint NOT NULL DEFAULT 0,
    gaps             bigint NOT NULL DEFAULT 0
);

-- Where an object's changes come from: the stream (the org selects it for CDC and the
-- stream is on), or polling.
ALTER TABLE sfpg.objects
    ADD COLUMN source text NOT NULL DEFAULT 'poll' CHECK (source IN ('stream', 'poll'));

DROP TRIGGER orgs_changed ON sfpg.orgs;
CREATE TRIGGER orgs_changed
    AFTER INSERT OR DELETE OR UPDATE OF rate_requests, rate_period_ms, max_daily_share, enabled,
        batch_size, sealed_credentials, bulk_threshold, cdc_enabled
    ON sfpg.orgs FOR EACH ROW EXECUTE FUNCTION sfpg.notify_org_changed();
