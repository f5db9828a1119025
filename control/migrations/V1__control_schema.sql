-- The control schema: sfpg's own state, kept apart from the mirrored orgs' schemas.
-- Later migrations add the orgs, objects and write-journal tables.
CREATE SCHEMA IF NOT EXISTS sfpg;
COMMENT ON SCHEMA sfpg IS 'sfpg control schema: orgs, sync state, write journal. Managed by sfpg migrations.';
