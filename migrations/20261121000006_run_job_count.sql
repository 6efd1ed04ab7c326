-- How many jobs a run has, written with the run: a runner shares a network namespace between
-- the jobs of a run only when there is more than one (a one-job run gains nothing from it and
-- would pay for an extra container).
ALTER TABLE pipeline_runs ADD COLUMN job_count integer NOT NULL DEFAULT 0;

UPDATE pipeline_runs r SET job_count = (SELECT count(*) FROM jobs j WHERE j.run_id = r.id);
