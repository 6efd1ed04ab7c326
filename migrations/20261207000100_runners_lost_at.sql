-- When the reaper last took an attempt back from a runner because its lease ran out. A claim
-- request that has waited since before then is not given a job: its runner may be cut off,
-- its long-poll a connection that nobody reads any more (SPEC §13; tests/api/fleet.rs).
ALTER TABLE runners ADD COLUMN lost_at timestamptz;
