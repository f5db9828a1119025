-- A generation per mirrored object, bumped by `sfpg objects resync`. A running sync saves
-- an object's progress only while the generation it loaded is still the row's, so a turn
-- that was in flight when the object was started over cannot write the old progress back
-- over the fresh start.
ALTER TABLE sfpg.objects ADD COLUMN generation bigint NOT NULL DEFAULT 0;
