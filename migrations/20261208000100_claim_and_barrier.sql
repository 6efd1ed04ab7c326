-- Two changes for scheduling throughput (bench/FINDINGS.md #22 and #27).
--
-- 1. `jobs_run_status` gains `position`, so the claim's pick of a run's next job (its queued,
--    runnable jobs by `runnable_at`, then pipeline order) is an ordered index scan that stops
--    at the first row it can lock, whatever the planner estimates. Before, it read and sorted
--    every queued job of the run, under the run's lock; an index with the claim's order
--    (branch w5-claim-index) was not used while the statistics said few jobs are queued, as
--    they do whenever the table was analysed between bursts.
DROP INDEX jobs_run_status;
CREATE INDEX jobs_run_status ON jobs (run_id, status, runnable_at, position);

-- 2. The stage a job waits on as a whole (`gitweave_model::plan::whole_stage_needs`): the
--    first jobs of a stage depend on every job of the stage before. When a job of that stage
--    ends while another of it is unfinished, such a job is known to be still waiting without
--    a search of its `depends_on` (500 positions each in W5 (a)). NULL: none, or a job made
--    before this column existed (its list is searched, as before).
ALTER TABLE jobs ADD COLUMN needs_stage integer;
