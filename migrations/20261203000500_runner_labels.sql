-- Runner labels and a job's requirements (SPEC §13).
-- A runner's whole label set: RUNNER_LABELS plus engine, os, arch and runner (its name).
ALTER TABLE runners ADD COLUMN labels jsonb NOT NULL DEFAULT '{}';
-- RUNNER_HOST_ID: which host holds the workspaces this runner makes.
ALTER TABLE runners ADD COLUMN host_id text;
-- What a runner must carry to take the job: its spec's runs_on, with engine=docker unless
-- runs_on names an engine. Derived, so no writer can store one that disagrees with the spec.
ALTER TABLE jobs ADD COLUMN requires jsonb NOT NULL
    GENERATED ALWAYS AS ('{"engine": "docker"}'::jsonb || COALESCE(spec -> 'runs_on', '{}'::jsonb)) STORED;
-- A claim counts the runner's running jobs against its capacity.
CREATE INDEX jobs_running_runner ON jobs (runner_id) WHERE status = 'running';
