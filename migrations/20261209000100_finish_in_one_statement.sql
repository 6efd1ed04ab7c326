-- A runner's report that a job succeeded, recorded in one statement outside any transaction
-- block when the run needs no re-plan (bench/FINDINGS.md #31). Until now it took four round
-- trips under the run's lock (BEGIN, lock and record, summary with the job's event, COMMIT)
-- and six when it ended the run (the planner's read of every job, the status change).
--
-- A single SQL statement cannot do this: its snapshot is taken before it waits for the run's
-- lock, so it would not see what the run's previous lock holder committed. A VOLATILE PL/pgSQL
-- function takes a new snapshot for each of its statements (READ COMMITTED), so everything it
-- reads after the lock is as current as the separate statements were.

-- plan::unmoved_by, as the database checks it: whether some pending job (queued, not offered)
-- may have been made ready by the change of `changed` (NULL: unknown, so any pending job may).
-- x is the changed job (not pending itself), n another unfinished job of its stage (one
-- running if there is one: a look-up of the few running jobs, else the last queued or manual
-- one), and every pending job that waits on x waits on n too. A pending job that waits on x's
-- whole stage (needs_stage) waits on n without a search of its list. Used by
-- `jobs::plan_summary` and `finish_success_settled`. In PL/pgSQL for its cached plan: a SQL
-- function with sub-selects is never inlined, and is planned again at every call (0.3 ms).
CREATE FUNCTION run_pending_ready(run uuid, changed uuid)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = run AND j.status = 'queued'
                                          AND j.runnable_at IS NULL)
       AND NOT EXISTS (
           SELECT 1 FROM jobs x
           CROSS JOIN LATERAL (
               SELECT COALESCE(
                   (SELECT n.position FROM jobs n
                    WHERE n.run_id = x.run_id AND n.status = 'running'
                      AND n.stage = x.stage AND n.position <> x.position
                    LIMIT 1),
                   (SELECT n.position FROM jobs n
                    WHERE n.run_id = x.run_id AND n.stage = x.stage
                      AND n.position <> x.position
                      AND n.status IN ('queued', 'manual')
                    ORDER BY n.position DESC LIMIT 1)) AS position
           ) n
           WHERE x.id = changed AND x.run_id = run AND n.position IS NOT NULL
             AND NOT (x.status = 'queued' AND x.runnable_at IS NULL)
             AND NOT EXISTS (
                 SELECT 1 FROM jobs d
                 WHERE d.run_id = run AND d.status = 'queued'
                   AND d.runnable_at IS NULL
                   AND d.needs_stage IS DISTINCT FROM x.stage
                   AND x.position = ANY(d.depends_on)
                   AND NOT (n.position = ANY(d.depends_on))));
END
$$;

-- Records that runner `runner` ended attempt `attempt` of job `job` with success, having
-- stored `log_end` bytes of its log, when that needs nothing of the planner but the run's new
-- status. Locks the job's run (as every writer of a run does, run first), then, on the rows as
-- they are under the lock:
--   * no row: the job does not exist;
--   * 'refused': the runner does not hold that attempt with that log (a repeated report, a
--     stale runner, a log still in flight); nothing written, the caller finds out which;
--   * 'plan': the planner is needed (a cancel, an ended run, a pending job this end may have
--     made ready, or pending jobs with nothing left to run); nothing written;
--   * 'recorded': the job's end, the events `ev_*` (the job's own, built by the caller), and
--     the run's new status with its events are written, as the planner would have written
--     them (plan::shortcut when some job is still offered or running, else plan::run_status
--     with no job pending: `blocked` if one waits for approval, `failed` if one failed that
--     may not or was canceled, else `success`). The run events' shapes are those of
--     `orchestrator::planning::{run_status_event, run_completed_event}`.
CREATE FUNCTION finish_success_settled(
    job uuid, runner uuid, attempt int, log_end bigint, exit_code int, reason text,
    log_truncated boolean, planner text,
    ev_types text[], ev_job_ids uuid[], ev_actors text[], ev_attempts int4[],
    ev_classes text[], ev_reasons text[], ev_data jsonb[])
RETURNS TABLE (outcome text, run_id uuid, locked_status text, run_status text,
               requires jsonb, ran_secs float8)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_variable
DECLARE
    r record;
    v_held boolean;
    v_pending boolean;
    v_active boolean;
    v_manual boolean;
    v_failed boolean;
    v_to text;
BEGIN
    SELECT pr.id, pr.status, pr.cancel_requested INTO r
    FROM pipeline_runs pr
    WHERE pr.id = (SELECT jb.run_id FROM jobs jb WHERE jb.id = job)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    run_id := r.id;
    locked_status := r.status;
    -- One look at the run's jobs under the lock (index look-ups on jobs_run_status). The job
    -- is running when held: it is neither pending nor, once ended, what keeps the run active.
    SELECT EXISTS (SELECT 1 FROM jobs jb
                   WHERE jb.id = job AND jb.runner_id = runner AND jb.attempt = attempt
                     AND jb.status = 'running' AND jb.log_end = log_end),
           EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'queued'
                                          AND j.runnable_at IS NULL),
           EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'running'
                                          AND j.id <> job)
           OR EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'queued'
                                             AND j.runnable_at IS NOT NULL),
           EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'manual'),
           EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'canceled')
           OR EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id AND j.status = 'failed'
                                             AND NOT j.allow_failure)
    INTO v_held, v_pending, v_active, v_manual, v_failed;
    IF NOT v_held THEN
        outcome := 'refused';
        RETURN NEXT;
        RETURN;
    END IF;
    IF r.cancel_requested OR r.status IN ('success', 'failed', 'canceled')
       OR (v_pending AND (NOT v_active OR run_pending_ready(r.id, job))) THEN
        outcome := 'plan';
        RETURN NEXT;
        RETURN;
    END IF;
    v_to := CASE WHEN v_active THEN 'running'
                 WHEN v_manual THEN 'blocked'
                 WHEN v_failed THEN 'failed'
                 ELSE 'success' END;
    run_status := v_to;
    IF v_to <> r.status THEN
        ev_types := array_append(ev_types, 'run.state_changed'::text);
        ev_job_ids := array_append(ev_job_ids, NULL::uuid);
        ev_actors := array_append(ev_actors, planner);
        ev_attempts := array_append(ev_attempts, NULL::int4);
        ev_classes := array_append(ev_classes, NULL::text);
        ev_reasons := array_append(ev_reasons, NULL::text);
        ev_data := array_append(ev_data, jsonb_build_object('from', r.status, 'to', v_to));
        IF v_to IN ('success', 'failed') THEN
            ev_types := array_append(ev_types, 'run.completed'::text);
            ev_job_ids := array_append(ev_job_ids, NULL::uuid);
            ev_actors := array_append(ev_actors, planner);
            ev_attempts := array_append(ev_attempts, NULL::int4);
            ev_classes := array_append(ev_classes, NULL::text);
            ev_reasons := array_append(ev_reasons, v_to);
            ev_data := array_append(ev_data, NULL::jsonb);
        END IF;
    END IF;
    -- The job's end, the run's status and every event, in one statement. The guard again, on
    -- the job's row as the update finds it (a log chunk does not take the run's lock): when
    -- it no longer holds, nothing is written.
    WITH done AS (
        UPDATE jobs jb SET status = 'success', exit_code = finish_success_settled.exit_code,
            error_class = NULL, reason = finish_success_settled.reason, ended_at = now(),
            lease_expires_at = NULL, log_truncated = finish_success_settled.log_truncated
        WHERE jb.id = job AND jb.runner_id = runner AND jb.attempt = attempt
          AND jb.status = 'running' AND jb.log_end = log_end
        RETURNING jb.requires, EXTRACT(EPOCH FROM (jb.ended_at - jb.started_at))::float8 AS secs
    ),
    moved AS (
        UPDATE pipeline_runs pr SET status = v_to,
            started_at = COALESCE(pr.started_at, now()),
            ended_at = CASE WHEN v_to IN ('success', 'failed') THEN now() ELSE NULL END,
            event_seq = pr.event_seq + cardinality(ev_types)
        FROM done
        WHERE pr.id = r.id
        RETURNING pr.event_seq
    ),
    appended AS (
        INSERT INTO events (run_id, seq, event_type, job_id, actor, attempt, error_class,
                            reason, data)
        SELECT r.id, moved.event_seq - cardinality(ev_types) + e.n, e.event_type, e.job_id,
               e.actor, e.attempt, e.error_class, e.reason, e.data
        FROM moved, UNNEST(ev_types, ev_job_ids, ev_actors, ev_attempts, ev_classes,
                           ev_reasons, ev_data)
                        WITH ORDINALITY AS e(event_type, job_id, actor, attempt, error_class,
                                             reason, data, n)
    )
    SELECT done.requires, done.secs INTO requires, ran_secs FROM done;
    IF NOT FOUND THEN
        outcome := 'refused';
        run_status := NULL;
        RETURN NEXT;
        RETURN;
    END IF;
    outcome := 'recorded';
    RETURN NEXT;
END
$$;
