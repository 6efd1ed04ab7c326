-- SPEC §11: artifacts and cache entries. The bytes live in the object store, content-addressed
-- by sha256 (`objects` tells which are stored and when one was last written or named, so the
-- sweeper never deletes an object an upload is about to name); these rows say what names them.

CREATE TABLE objects (
    sha256     text        PRIMARY KEY,
    size       bigint      NOT NULL,
    touched_at timestamptz NOT NULL DEFAULT now()
);

-- One row per file a job kept: the attempt that stored it (a later attempt's file of the same
-- path replaces it). Rows outlive their expiry (GET answers 410 for them) until the job goes;
-- `swept` once the sweeper has let go of their object.
CREATE TABLE artifacts (
    job_id     uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path       text        NOT NULL,
    run_id     uuid        NOT NULL,
    attempt    integer     NOT NULL,
    size       bigint      NOT NULL,
    sha256     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    swept      boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, path)
);
CREATE INDEX artifacts_run_id ON artifacts (run_id);
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
CREATE INDEX artifacts_expiring ON artifacts (expires_at) WHERE NOT swept;

-- One entry per key and scope, never overwritten. `protected`: written by a run of a
-- protected ref (not a pull request), the only entries such runs restore.
CREATE TABLE cache_entries (
    repo_id    uuid        NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    protected  boolean     NOT NULL,
    key        text        NOT NULL,
    sha256     text        NOT NULL,
    size       bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo_id, protected, key)
);
CREATE INDEX cache_entries_newest ON cache_entries (repo_id, protected, created_at DESC);
CREATE INDEX cache_entries_sha256 ON cache_entries (sha256);
CREATE INDEX cache_entries_lru ON cache_entries (repo_id, used_at);
