-- The planner's summary of a run (is any job pending, active, started?) as index look-ups:
-- counting every job of a large run under its lock, on every job end, was O(n) each time
-- (bench/FINDINGS.md #5).
CREATE INDEX jobs_run_status ON jobs (run_id, status, runnable_at);
