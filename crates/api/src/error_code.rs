//! The stable `code`s of the JSON error envelope (`{"error":{"code","message"}}`): every code
//! pipeline-svc and the gateway answer, and the ones runner-svc's client decides on. A client
//! matches these constants, never a literal; a new code is added here first. (The framework
//! rejections of `gitweave_http::envelope_rejections` name theirs after the status.)

/// 409: the runner no longer holds the attempt it writes for (canceled, timed out or
/// reassigned); the runner drops the attempt.
pub const STALE_ATTEMPT: &str = "stale_attempt";
/// 409: a finish or hand-back reports more log than is stored; send the rest first.
pub const LOG_INCOMPLETE: &str = "log_incomplete";
/// 409: a log chunk does not continue the stored log.
pub const LOG_OFFSET_MISMATCH: &str = "log_offset_mismatch";
/// 400: an attempt number below 1.
pub const BAD_ATTEMPT: &str = "bad_attempt";
/// 400: a request that needs a body came without one.
pub const MISSING_BODY: &str = "missing_body";
/// 401: no valid credentials.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// 404: no such thing (or route).
pub const NOT_FOUND: &str = "not_found";
/// 413: the body is over its limit.
pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
/// 503: a dependency (Postgres) is not answering.
pub const UNAVAILABLE: &str = "unavailable";
/// 500: a bug; the details are in the service's log.
pub const INTERNAL: &str = "internal";
/// 429 (gateway): over the per-client rate limit.
pub const RATE_LIMITED: &str = "rate_limited";
/// 400/404 (gateway): a request path the gateway does not forward.
pub const INVALID_PATH: &str = "invalid_path";
/// 503 (gateway): pipeline-svc is unreachable.
pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
/// 502 (gateway): another upstream failure.
pub const BAD_GATEWAY: &str = "bad_gateway";
/// 504 (gateway): no response headers from pipeline-svc in time.
pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
/// 408 (gateway): the client sent its request too slowly.
pub const REQUEST_TIMEOUT: &str = "request_timeout";
/// 416: a log offset past the end of a log that can no longer grow; the message gives the end.
pub const OFFSET_PAST_END: &str = "offset_past_end";
/// 409: a repo with a run that has not ended cannot be deleted.
pub const RUN_ACTIVE: &str = "run_active";
/// 409: a template attached to a repo cannot be deleted.
pub const TEMPLATE_ATTACHED: &str = "template_attached";
/// 400: a query parameter that does not parse (`offset`, `limit`, `after`, `follow`, ...).
pub const BAD_QUERY: &str = "bad_query";
/// 400: a body that could not be read (a stream cut short, a bad content encoding).
pub const BAD_BODY: &str = "bad_body";
/// 400: a body that is not JSON at all.
pub const MALFORMED_JSON: &str = "malformed_json";
/// 422: JSON of the wrong shape for the route (a missing field, a wrong type).
pub const INVALID_BODY: &str = "invalid_body";
/// 400: a path id that is not a UUID.
pub const INVALID_ID: &str = "invalid_id";
/// 400: a repo or template name outside the name grammar (SPEC §2).
pub const INVALID_NAME: &str = "invalid_name";
/// 400: a template body that is not UTF-8.
pub const INVALID_ENCODING: &str = "invalid_encoding";
/// 422: a template that does not parse or validate; the message names the key.
pub const INVALID_TEMPLATE: &str = "invalid_template";
/// 422: an input value of the wrong type, or a required one missing.
pub const INVALID_INPUT: &str = "invalid_input";
/// 422: an input no selected template declares.
pub const UNKNOWN_INPUT: &str = "unknown_input";
/// 422: a trigger with no template to run (none attached, or none selected).
pub const NO_TEMPLATES: &str = "no_templates";
/// 422: a trigger of a repo with neither a `.gitweave.yml` at the commit nor an attached
/// template (SPEC §9).
pub const NO_PIPELINE: &str = "no_pipeline";
/// 422: the pipeline's `rules` match nothing for this trigger (SPEC §9).
pub const NO_MATCHING_RULE: &str = "no_matching_rule";
/// 422: the repo's `.gitweave.yml` does not parse or validate; on a push, the code of the
/// failed run's `error` (SPEC §9).
pub const CONFIG_ERROR: &str = "config_error";
/// 422: the repo's git server (or its mirror) could not be read for the pipeline file; on a
/// push, the code of the failed run's `error`.
pub const REPO_UNREADABLE: &str = "repo_unreadable";
/// 422: a trigger names `templates` while the pipeline comes from the repo's file.
pub const PIPELINE_FROM_FILE: &str = "pipeline_from_file";
/// 422: a trigger selects a template the repo has not attached.
pub const TEMPLATE_NOT_ATTACHED: &str = "template_not_attached";
/// 422: a `ref` that is not a valid git ref name.
pub const INVALID_REF: &str = "invalid_ref";
/// 422: a `commit` that is not a full 40-hex sha.
pub const INVALID_COMMIT: &str = "invalid_commit";
/// 422: a `default_branch` that is not a valid branch name.
pub const INVALID_BRANCH: &str = "invalid_branch";
/// 422: a clone URL the clone-URL rules refuse.
pub const INVALID_CLONE_URL: &str = "invalid_clone_url";
/// 422: an empty webhook secret (null removes it).
pub const INVALID_SECRET: &str = "invalid_secret";
/// 422: an approval reason over its length cap.
pub const INVALID_REASON: &str = "invalid_reason";
/// 422: a runner registration with a bad name, capacity or labels.
pub const INVALID_RUNNER: &str = "invalid_runner";
/// 422: a trigger without `commit` names a ref the repo's server does not have.
pub const UNKNOWN_REF: &str = "unknown_ref";
/// 422: the repo's server could not be asked for a ref's commit (unreachable, timeout).
pub const REF_UNRESOLVED: &str = "ref_unresolved";
/// 422: an input over one of the caps of SPEC §15; the message names the cap.
pub const LIMIT_EXCEEDED: &str = "limit_exceeded";
/// 400: a webhook without its forge's event header.
pub const MISSING_EVENT: &str = "missing_event";
/// 422: a webhook payload that is JSON but not the forge's event shape.
pub const INVALID_PAYLOAD: &str = "invalid_payload";
/// 409: a webhook delivery id already received (its run is answered when known).
pub const DUPLICATE_DELIVERY: &str = "duplicate_delivery";
/// 409: cancel of a run that has already ended.
pub const RUN_ENDED: &str = "run_ended";
/// 409: approve of a job that is not waiting for approval.
pub const NOT_MANUAL: &str = "not_manual";
/// 422: a runner asks about more runs at once than the protocol allows.
pub const TOO_MANY_RUNS: &str = "too_many_runs";
/// 422: a secret name that does not match `^[A-Z_][A-Z0-9_]{0,127}$`.
pub const INVALID_SECRET_NAME: &str = "invalid_secret_name";
/// 422: a secret value outside 8 bytes to 64 KiB, or a secret body of the wrong shape.
pub const INVALID_SECRET_VALUE: &str = "invalid_secret_value";
/// 422: a `protected_refs` entry that is not a valid glob.
pub const INVALID_PROTECTED_REF: &str = "invalid_protected_ref";
/// 403 (gateway UI): a form posted without this session's CSRF token, or with a wrong one.
pub const CSRF_FAILED: &str = "csrf_failed";
/// 401 (gateway UI): the token given at `/login` is not the API token.
pub const WRONG_TOKEN: &str = "wrong_token";
/// 503 (gateway UI): the session store is full of signed-in sessions.
pub const SESSIONS_FULL: &str = "sessions_full";
/// 409: a short id (8 or more hex digits) that more than one run or job starts or ends with;
/// the message lists them.
pub const AMBIGUOUS: &str = "ambiguous";
/// 410: the artifact's `expire_in` has passed; its bytes are gone.
pub const ARTIFACT_EXPIRED: &str = "artifact_expired";
/// 416: a `Range` outside the artifact.
pub const RANGE_NOT_SATISFIABLE: &str = "range_not_satisfiable";
/// 422: an upload's bytes do not hash to the sha256 its sender said.
pub const DIGEST_MISMATCH: &str = "digest_mismatch";
/// 422: an artifact path or cache key that the job does not declare, or that is not one.
pub const INVALID_ARTIFACT: &str = "invalid_artifact";
