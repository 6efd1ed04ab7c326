-- Workspace affinity (SPEC §13): the runner hosts that hold a piece of a run's workspace, in
-- the order they first took one of its jobs. A claim by a runner on another host is refused
-- while one of these hosts has a live runner that could take the job.
ALTER TABLE pipeline_runs ADD COLUMN workspace_hosts text[] NOT NULL DEFAULT '{}';

-- The affinity rule, written once for the claim statement and `any_runnable`: may a runner on
-- `host` (NULL: a registration without a host id) take a job needing `requires` of a run whose
-- workspace `hosts` hold? Yes before the run's first claim, on one of those hosts, or when none
-- of them has a runner that is not revoked, was seen within `live_ms` and carries `requires`.
CREATE FUNCTION workspace_affinity_allows(hosts text[], host text, requires jsonb, live_ms float8)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT cardinality(hosts) = 0 OR host = ANY(hosts)
        OR NOT EXISTS (SELECT 1 FROM runners h
                       WHERE h.host_id = ANY(hosts)
                         AND h.revoked_at IS NULL
                         AND h.last_seen_at > now() - make_interval(secs => live_ms / 1000)
                         AND requires <@ h.labels)
$$;
