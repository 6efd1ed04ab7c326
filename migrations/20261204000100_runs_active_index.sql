-- The unfinished runs (ended_at is set exactly when a run reaches a terminal status): what
-- pipeline-svc's /metrics reads for the queue depth, without scanning the run history.
CREATE INDEX pipeline_runs_active ON pipeline_runs (id) WHERE ended_at IS NULL;
