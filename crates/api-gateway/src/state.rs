//! [`GatewayState`]: what every gateway handler is given, apart from the router that uses
//! it (so `proxy` and `startup` both depend on it, and not on each other).

use crate::config::Config;
use crate::limit::RateLimiter;
use gitweave_http::Metrics;
use std::sync::Arc;

/// What the proxy needs.
#[derive(Clone)]
pub struct GatewayState {
    /// Settings.
    pub config: Arc<Config>,
    /// pipeline-svc's base URL without a trailing slash.
    pub upstream: Arc<str>,
    /// Pooled HTTP client.
    pub client: reqwest::Client,
    /// Numbers for `/metrics`.
    pub metrics: Metrics,
    /// Per-client request rate limits (`None`: off).
    pub limiter: Option<Arc<RateLimiter>>,
    /// The web UI's browser sessions.
    pub sessions: Arc<crate::ui::session::Sessions>,
    /// The path of pipeline-svc's base URL (usually empty), which every upstream path starts
    /// with.
    pub upstream_base_path: Arc<str>,
}
