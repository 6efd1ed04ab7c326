-- GitWeave schema: repos, versioned templates, attachments, runs, jobs (with attempts and
-- leases), log chunks, the append-only event log, runners and webhook deliveries.

CREATE TABLE repos (
    id             uuid        PRIMARY KEY,
    name           text        NOT NULL UNIQUE,
    clone_url      text,
    default_branch text        NOT NULL DEFAULT 'main',
    webhook_secret text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE templates (
    name           text        PRIMARY KEY,
    latest_version integer     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every PUT that changes the body adds a version; runs record the version they used.
CREATE TABLE template_versions (
    template_name text        NOT NULL REFERENCES templates (name) ON DELETE CASCADE,
    version       integer     NOT NULL,
    body          text        NOT NULL,
    -- The validated template (gitweave_model::template::Template) as JSON: parsed once.
    parsed        jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_name, version)
);

CREATE TABLE repo_templates (
    repo_id       uuid        NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    template_name text        NOT NULL REFERENCES templates (name),
    position      integer     NOT NULL,
    inputs        jsonb       NOT NULL DEFAULT '{}',
    attached_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo_id, template_name)
);

CREATE TABLE pipeline_runs (
    id         uuid        PRIMARY KEY, -- UUID v7: time-ordered, used as the page cursor
    repo_id    uuid        NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    ref        text        NOT NULL,
    commit_sha text,
    status     text        NOT NULL
        CHECK (status IN ('queued', 'running', 'blocked', 'success', 'failed', 'canceled')),
    trigger    text        NOT NULL CHECK (trigger IN ('api', 'push', 'rerun')),
    templates  text[]      NOT NULL,
    inputs     jsonb       NOT NULL DEFAULT '{}',
    rerun_of   uuid        REFERENCES pipeline_runs (id) ON DELETE SET NULL,
    -- The last event's seq: bumped in the same transaction as each event.
    event_seq  bigint      NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    ended_at   timestamptz
);
CREATE INDEX pipeline_runs_repo_id_id ON pipeline_runs (repo_id, id DESC);

CREATE TABLE runners (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL,
    token_hash    bytea       NOT NULL,
    capacity      integer     NOT NULL,
    engine        text        NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id               uuid        PRIMARY KEY,
    run_id           uuid        NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    position         integer     NOT NULL, -- pipeline order, 0-based
    stage            integer     NOT NULL, -- template index in the run, 0-based
    template         text        NOT NULL,
    template_version integer     NOT NULL,
    name             text        NOT NULL, -- <template>/<job>
    -- The expanded job (gitweave_model::expand::ExpandedJob) as JSON.
    spec             jsonb       NOT NULL,
    depends_on       integer[]   NOT NULL DEFAULT '{}', -- positions of the jobs it waits for
    status           text        NOT NULL
        CHECK (status IN ('queued', 'running', 'success', 'failed', 'canceled', 'skipped', 'manual')),
    exit_code        integer,
    error_class      text,
    reason           text,
    attempt          integer     NOT NULL DEFAULT 0,
    -- Set when the job is offered to runners (its dependencies settled); a queued job with
    -- NULL here is still waiting. Retries set it in the future for backoff.
    runnable_at      timestamptz,
    runner_id        uuid        REFERENCES runners (id) ON DELETE SET NULL,
    lease_expires_at timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    -- Length of the current attempt's stored log.
    log_end          bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    UNIQUE (run_id, position),
    UNIQUE (run_id, name)
);
CREATE INDEX jobs_claimable ON jobs (runnable_at, run_id, position)
    WHERE status = 'queued' AND runnable_at IS NOT NULL;
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';

-- Log chunks. (job_id, attempt, offset) is unique: a resent chunk is a no-op, and each
-- attempt's log is kept apart.
CREATE TABLE logs (
    job_id   uuid    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt  integer NOT NULL,
    "offset" bigint  NOT NULL,
    chunk    bytea   NOT NULL,
    PRIMARY KEY (job_id, attempt, "offset")
);

-- The append-only event log (SPEC §6).
CREATE TABLE events (
    run_id        uuid        NOT NULL REFERENCES pipeline_runs (id) ON DELETE CASCADE,
    seq           bigint      NOT NULL,
    event_type    text        NOT NULL,
    job_id        uuid,
    timestamp_utc timestamptz NOT NULL DEFAULT now(),
    actor         text        NOT NULL,
    attempt       integer,
    error_class   text,
    reason        text,
    data          jsonb,
    PRIMARY KEY (run_id, seq)
);

-- Webhook deliveries, recorded in the same transaction as the run they made.
CREATE TABLE webhook_deliveries (
    provider    text        NOT NULL,
    delivery_id text        NOT NULL,
    repo_id     uuid        NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    run_id      uuid        REFERENCES pipeline_runs (id) ON DELETE SET NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, delivery_id)
);
