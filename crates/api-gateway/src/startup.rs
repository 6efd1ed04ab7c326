//! Building and running the gateway.

use crate::config::Config;
use crate::limit::RateLimiter;
use crate::proxy;
use crate::state::GatewayState;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gitweave_api::error_code;
use gitweave_http::{Metrics, error_response};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A bound, not yet serving gateway.
pub struct App {
    listener: TcpListener,
    state: GatewayState,
}

impl App {
    /// Binds the listener and makes the upstream client.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        // `GITWEAVE_API_TOKEN=` (set but empty, as compose passes an unset variable) means no
        // auth, not "the empty token".
        config.api_token = config.api_token.filter(|t| !t.is_empty());
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let listener = TcpListener::bind(config.addr).await?;
        let metrics = Metrics::new();
        metrics.describe("http_responses_total", "HTTP responses, by status class.");
        metrics.describe(
            "gateway_upstream_errors_total",
            "Requests pipeline-svc did not answer.",
        );
        metrics.describe(
            "gateway_rate_limited_total",
            "Requests refused with 429 for going over their client's rate limit.",
        );
        let limiter = RateLimiter::new(config.rate_limit, config.rate_burst).map(Arc::new);
        let upstream = config.pipeline_url.trim_end_matches('/');
        let upstream_base_path = reqwest::Url::parse(upstream)
            .map_err(|e| anyhow::anyhow!("PIPELINE_SVC_URL {upstream:?} is not a URL: {e}"))?
            .path()
            .trim_end_matches('/')
            .to_owned();
        let max_connections =
            gitweave_http::serve::connections_within_fd_limit(config.max_connections);
        if max_connections < config.max_connections {
            tracing::warn!(
                wanted = config.max_connections,
                max_connections,
                "GATEWAY_MAX_CONNECTIONS lowered to fit the open-file limit (ulimit -n); raise it to hold more"
            );
            config.max_connections = max_connections;
        }
        Ok(Self {
            listener,
            state: GatewayState {
                upstream: Arc::from(upstream),
                config: Arc::new(config),
                client,
                metrics,
                limiter,
                sessions: Arc::default(),
                upstream_base_path: Arc::from(upstream_base_path),
            },
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then finishes requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, upstream = %self.state.upstream, "api-gateway listening");
        // The web UI's pages (`/`, `/runs/…`, …) are its own routes; every other path goes to
        // the proxy, whose path parser alone decides what is forwarded (only `/api/v1/…`;
        // anything else is a 404 there).
        let router = Router::new()
            .route(
                "/healthz",
                get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
            )
            .route("/readyz", get(readyz))
            .route(
                "/metrics",
                get(|State(s): State<GatewayState>| async move {
                    // Its own numbers only: the queue and the fleet are pipeline-svc's, on
                    // its /metrics (not proxied: nothing of pipeline-svc leaks through here).
                    gitweave_http::metrics::text_response(format!(
                        "{GATEWAY_METRICS_NOTE}\n{}",
                        s.metrics.render()
                    ))
                }),
            )
            .merge(crate::ui::routes(self.state.clone()))
            .fallback(proxy::forward)
            .with_state(self.state.clone())
            // The framework's own answers (a 405 of `/healthz`, …) get the envelope too.
            .layer(axum::middleware::from_fn(
                gitweave_http::envelope_rejections,
            ));
        let router =
            gitweave_http::request_id_layers(router).layer(axum::middleware::from_fn_with_state(
                self.state.metrics.clone(),
                gitweave_http::metrics::count_requests,
            ));
        let config = &self.state.config;
        let options = gitweave_http::ServeOptions {
            header_read_timeout: Duration::from_millis(config.header_timeout_ms),
            max_connections: config.max_connections,
            max_connections_per_client: config.max_connections_per_ip,
            metrics: self.state.metrics.clone(),
        };
        gitweave_http::serve(self.listener, router, options, shutdown).await;
        tracing::info!("api-gateway stopped");
        Ok(())
    }
}

async fn readyz(State(s): State<GatewayState>) -> Response {
    let url = format!("{}/readyz", s.upstream);
    match s
        .client
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            axum::Json(serde_json::json!({ "status": "ready", "pipeline_svc": "ok" }))
                .into_response()
        }
        Ok(r) => error_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            error_code::UNAVAILABLE,
            format!("pipeline-svc is not ready ({})", r.status()),
        ),
        Err(e) => error_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            error_code::UNAVAILABLE,
            format!("pipeline-svc is not reachable: {e}"),
        ),
    }
}

/// The first line of the gateway's `/metrics`: a comment saying where the rest are.
pub const GATEWAY_METRICS_NOTE: &str = "# api-gateway: its own requests only. Queue depth, queue wait, job durations and runners online are on pipeline-svc's /metrics (PIPELINE_ADDR), which the gateway does not proxy.";
