-- Workers and leases (issue 26): any number of `sfpg sync` processes share the orgs of one
-- mirror database, with PostgreSQL as the only coordinator. Nothing here needs session
-- state, so it works through PgBouncer in transaction mode.
--
--   * sfpg.workers: one row per running sync process, renewed by its heartbeat. A worker
--     whose row expired is dead to the others: placement leaves it out.
--   * sfpg.leases: one row per org. `owner` holds the org until `expires_at`; each time the
--     lease is taken (by anyone, itself included) `epoch` grows by one. Every write a
--     worker makes for an org checks, in the same transaction, that the lease still has the
--     epoch it took (`FOR KEY SHARE` on the row, so that no take-over commits between the
--     check and the write's commit): a worker whose lease was taken over cannot write.
--
-- The holder is named here only: `sfpg.orgs.lease_owner` and `lease_expires_at` (V2, for
-- the advisory-lock era's status) are dropped, so there is no copy to keep in step; the
-- expiry is renewed without touching sfpg.orgs (whose trigger announces settings changes).

CREATE TABLE sfpg.workers (
    -- `host:pid`.
    name          text PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    -- The most orgs it runs (`--max-orgs`).
    max_orgs      integer NOT NULL CHECK (max_orgs > 0)
);

CREATE TABLE sfpg.leases (
    org_name    text PRIMARY KEY REFERENCES sfpg.orgs (name) ON DELETE CASCADE,
    owner       text,
    epoch       bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    expires_at  timestamptz,
    taken_at    timestamptz,
    CHECK ((owner IS NULL) = (expires_at IS NULL))
);

CREATE INDEX leases_owner ON sfpg.leases (owner) WHERE owner IS NOT NULL;

INSERT INTO sfpg.leases (org_name) SELECT name FROM sfpg.orgs;

-- Every org gets its lease row when it is registered.
CREATE FUNCTION sfpg.add_org_lease() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sfpg.leases (org_name) VALUES (NEW.name) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER orgs_lease AFTER INSERT ON sfpg.orgs
    FOR EACH ROW EXECUTE FUNCTION sfpg.add_org_lease();

-- The advisory-lock era's holders are not leases.
ALTER TABLE sfpg.orgs DROP COLUMN lease_owner, DROP COLUMN lease_expires_at;
