-- Workspace affinity (SPEC §13): the runner hosts that hold a piece of a run's workspace, in
-- the order they first took one of its jobs. A claim by a runner on another host is refused
-- while one of these hosts has a live runner that could take the job.
ALTER TABLE pipeline_runs ADD COLUMN workspace_hosts text[] NOT NULL DEFAULT '{}';
