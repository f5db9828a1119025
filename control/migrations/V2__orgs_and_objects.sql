-- Orgs and their mirrored objects: everything a restarted sync needs to resume where it
-- stopped, and everything `sfpg status` shows.

CREATE TABLE sfpg.orgs (
    name                text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    schema_name         text NOT NULL UNIQUE,
    auth_flow           text NOT NULL
                        CHECK (auth_flow IN ('password', 'client_credentials', 'jwt_bearer', 'refresh_token')),
    login_url           text NOT NULL,
    instance_url        text,
    api_version         text NOT NULL DEFAULT '62.0',
    client_id           text NOT NULL,
    username            text,
    -- Client secret, password, private key, refresh token: AES-256-GCM sealed, never plain.
    sealed_credentials  bytea NOT NULL,
    ca_cert_pem         text,
    batch_size          integer NOT NULL DEFAULT 200 CHECK (batch_size BETWEEN 200 AND 2000),
    rate_requests       integer NOT NULL DEFAULT 1 CHECK (rate_requests > 0),
    rate_period_ms      bigint NOT NULL DEFAULT 3000 CHECK (rate_period_ms > 0),
    max_daily_share     real NOT NULL DEFAULT 0.8 CHECK (max_daily_share > 0 AND max_daily_share <= 1),
    enabled             boolean NOT NULL DEFAULT true,
    org_id              varchar(18),
    -- Which sync process holds the org, until when (FOR UPDATE SKIP LOCKED leases).
    lease_owner         text,
    lease_expires_at    timestamptz,
    -- Sforce-Limit-Info as last seen.
    api_used            integer,
    api_max             integer,
    api_seen_at         timestamptz,
    paused_reason       text,
    last_error          text,
    last_error_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sfpg.objects (
    org_name                text NOT NULL REFERENCES sfpg.orgs (name) ON DELETE CASCADE,
    object_name             text NOT NULL,
    table_name              text NOT NULL,
    enabled                 boolean NOT NULL DEFAULT true,
    phase                   text NOT NULL DEFAULT 'describing'
                            CHECK (phase IN ('describing', 'backfilling', 'live')),
    -- Set when the object cannot go on (e.g. a type change PostgreSQL cannot hold).
    paused_reason           text,
    describe_modified_at    timestamptz,
    -- [{"field": "Name", "column": "name", "type": "varchar(255)"}, …] as currently written.
    mirrored_fields         jsonb NOT NULL DEFAULT '[]',
    -- Fields that left describe: their columns stay, unwritten.
    removed_fields          text[] NOT NULL DEFAULT '{}',
    -- Fields added after the backfill, still to be filled in.
    pending_field_backfill  text[] NOT NULL DEFAULT '{}',
    backfill_snapshot       timestamptz,
    backfill_last_id        varchar(18),
    backfill_done           bigint NOT NULL DEFAULT 0,
    backfill_total          bigint,
    cursor_modstamp         timestamptz,
    cursor_id               varchar(18),
    newest_modstamp         timestamptz,
    deleted_watermark       timestamptz,
    reconciled_at           timestamptz,
    formulas_refreshed_at   timestamptz,
    row_count               bigint NOT NULL DEFAULT 0,
    requests                bigint NOT NULL DEFAULT 0,
    last_error              text,
    last_error_at           timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_name, object_name),
    UNIQUE (org_name, table_name)
);

-- A running sync learns of a changed org (rate limit, budget, objects) at once.
CREATE FUNCTION sfpg.notify_org_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sfpg_org_changed', COALESCE(NEW.name, OLD.name));
    RETURN NULL;
END
$$;

CREATE FUNCTION sfpg.notify_objects_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sfpg_org_changed', COALESCE(NEW.org_name, OLD.org_name));
    RETURN NULL;
END
$$;

CREATE TRIGGER orgs_changed
    AFTER INSERT OR DELETE OR UPDATE OF rate_requests, rate_period_ms, max_daily_share, enabled,
        batch_size, sealed_credentials
    ON sfpg.orgs FOR EACH ROW EXECUTE FUNCTION sfpg.notify_org_changed();

CREATE TRIGGER objects_changed
    AFTER INSERT OR DELETE OR UPDATE OF enabled
    ON sfpg.objects FOR EACH ROW EXECUTE FUNCTION sfpg.notify_objects_changed();
