-- Retention (PIPELINE_RETENTION_DAYS) looks for the runs that ended longest ago, a batch at a
-- time; without this index every pass would scan the whole table.
CREATE INDEX pipeline_runs_ended_at ON pipeline_runs (ended_at) WHERE ended_at IS NOT NULL;
