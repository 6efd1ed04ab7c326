-- The affinity rule (20261206000100_workspace_hosts.sql), unchanged, split so that PostgreSQL
-- can inline it (bench/FINDINGS.md #21). A SQL function whose body holds a sub-select is never
-- inlined: the claim called it as a function (its own executor start-up) for every queued job
-- its scan passed, ~340 calls per claim in W5 (a), most of them answered by the first two
-- arms. Now the cheap arms are inlined into the claim and `any_runnable`, and the look-up of a
-- live runner on the workspace hosts is called only when neither answers.
CREATE FUNCTION workspace_hosts_can_take(hosts text[], requires jsonb, live_ms float8)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM runners h
                   WHERE h.host_id = ANY(hosts)
                     AND h.revoked_at IS NULL
                     AND h.last_seen_at > now() - make_interval(secs => live_ms / 1000)
                     AND requires <@ h.labels)
$$;

CREATE OR REPLACE FUNCTION workspace_affinity_allows(hosts text[], host text, requires jsonb, live_ms float8)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT cardinality(hosts) = 0 OR host = ANY(hosts)
        OR NOT workspace_hosts_can_take(hosts, requires, live_ms)
$$;
