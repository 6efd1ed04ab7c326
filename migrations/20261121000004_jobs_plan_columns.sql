-- The two fields of a job's spec the planner needs, as columns: re-planning a run on every job
-- end used to read and parse every job's whole spec JSON, O(n²) per run (bench/FINDINGS.md #5).
ALTER TABLE jobs
    ADD COLUMN allow_failure boolean NOT NULL DEFAULT false,
    ADD COLUMN run_when      text    NOT NULL DEFAULT 'on_success'
        CHECK (run_when IN ('on_success', 'manual', 'always'));

UPDATE jobs SET
    allow_failure = coalesce((spec->>'allow_failure')::boolean, false),
    run_when      = coalesce(spec->>'when', 'on_success');
