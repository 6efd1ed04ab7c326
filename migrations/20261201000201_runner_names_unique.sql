-- A runner name belongs to one live registration at a time, so `runner:<name>` in an event's
-- actor always means one registration. A new registration under a name takes it over: the
-- previous one is revoked (its token is refused from then on) in the same transaction.
ALTER TABLE runners ADD COLUMN revoked_at timestamptz;
-- Registrations made before this migration: the newest of each name stays live (ids are
-- UUID v7, so a larger id is a later registration).
UPDATE runners r SET revoked_at = now()
WHERE EXISTS (SELECT 1 FROM runners n WHERE n.name = r.name AND n.id > r.id);
CREATE UNIQUE INDEX runners_live_name ON runners (name) WHERE revoked_at IS NULL;
