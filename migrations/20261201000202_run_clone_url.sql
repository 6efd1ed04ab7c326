-- The clone URL a run checks out from, copied from its repo when the run is made: changing the
-- repo's clone_url later cannot change what a queued or running run checks out.
ALTER TABLE pipeline_runs ADD COLUMN clone_url text;
-- Runs made before this column existed read the repo's URL at claim time; keep that for the
-- ones still going.
UPDATE pipeline_runs r SET clone_url = p.clone_url
FROM repos p
WHERE p.id = r.repo_id AND r.ended_at IS NULL;
