-- What a run ran, and why a run could not run (SPEC §9):
--   source:       {"file": {"path", "blob"} | null, "templates": [{"name", "version"}]}:
--                 the pipeline file's blob id, or each template's version; a rerun copies it
--                 with the jobs' stored expansion.
--   error:        {"code", "message"} of a run made failed, without jobs (a broken
--                 .gitweave.yml on a push).
--   pull_request: {"number", "source_branch", "target_branch", "fork"} of a pull request run.
ALTER TABLE pipeline_runs ADD COLUMN source jsonb;
ALTER TABLE pipeline_runs ADD COLUMN error jsonb;
ALTER TABLE pipeline_runs ADD COLUMN pull_request jsonb;
-- The answer to a delivery that made no run ({"status": "skipped", "reason"}).
ALTER TABLE webhook_deliveries ADD COLUMN answer jsonb;
-- `trigger` gains `pull_request`.
ALTER TABLE pipeline_runs DROP CONSTRAINT pipeline_runs_trigger_check;
ALTER TABLE pipeline_runs ADD CONSTRAINT pipeline_runs_trigger_check
    CHECK (trigger IN ('api', 'push', 'rerun', 'pull_request'));
