//! The stable `code`s of the JSON error envelope (`{"error":{"code","message"}}`) that more
//! than one crate writes or reads: pipeline-svc answers them, the gateway answers its own, and
//! runner-svc's client decides on them. A client matches these constants, never a literal.

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
