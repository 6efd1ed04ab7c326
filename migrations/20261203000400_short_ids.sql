-- Short ids (gitweave_model::short_id): a run or job named by the last 8 hex digits of its
-- UUID, the random part of a UUIDv7, is found through these indexes; a prefix uses the
-- primary key's range.
CREATE INDEX pipeline_runs_short_id ON pipeline_runs ((right(id::text, 8)));
CREATE INDEX jobs_short_id ON jobs ((right(id::text, 8)));
