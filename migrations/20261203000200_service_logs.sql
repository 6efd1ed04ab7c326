-- SPEC §12: the output of a job's services, kept like a job's log (per attempt, chunks at
-- contiguous byte offsets from 0). One row per service and attempt holds where its stored
-- log ends; it is made with the first chunk, so a service that printed nothing has none.
CREATE TABLE service_logs (
    job_id   uuid    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt  integer NOT NULL,
    service  text    NOT NULL,
    log_end  bigint  NOT NULL,
    PRIMARY KEY (job_id, attempt, service)
);

CREATE TABLE service_log_chunks (
    job_id   uuid    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt  integer NOT NULL,
    service  text    NOT NULL,
    "offset" bigint  NOT NULL,
    chunk    bytea   NOT NULL,
    PRIMARY KEY (job_id, attempt, service, "offset")
);
