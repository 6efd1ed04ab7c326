-- SPEC §15: a runner cuts a job's log at RUNNER_LOG_LIMIT and says so with the finish; the job
-- view shows it. Reset with every new attempt, as log_end is.
ALTER TABLE jobs ADD COLUMN log_truncated boolean NOT NULL DEFAULT false;

-- How many attempts of the job stopping runners handed back (SIGTERM past
-- RUNNER_SHUTDOWN_GRACE): those attempts do not count against the job's `retry`.
ALTER TABLE jobs ADD COLUMN handed_back integer NOT NULL DEFAULT 0;
