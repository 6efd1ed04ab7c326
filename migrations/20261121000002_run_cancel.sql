-- A cancel asked for on a run: jobs not started are canceled at once; running jobs are told
-- through their heartbeat and the run ends `canceled` when the last of them has stopped.
ALTER TABLE pipeline_runs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
