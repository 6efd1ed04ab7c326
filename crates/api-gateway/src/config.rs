//! Configuration from flags or environment (SPEC §8).

use gitweave_http::LogFormat;
use std::net::SocketAddr;

/// api-gateway settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "api-gateway", version, about = "GitWeave API gateway")]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "GATEWAY_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: SocketAddr,
    /// pipeline-svc's base URL.
    #[arg(
        long,
        env = "PIPELINE_SVC_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub pipeline_url: String,
    /// When set, every /api/v1 request except webhooks needs `Authorization: Bearer <token>`.
    #[arg(long, env = "GITWEAVE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Largest request body, except webhooks.
    #[arg(long, env = "GATEWAY_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: u64,
    /// Largest webhook body (SPEC §7: 25 MiB).
    #[arg(long, env = "GATEWAY_WEBHOOK_BODY_LIMIT", default_value_t = 25 * 1024 * 1024)]
    pub webhook_body_limit: u64,
    /// How long to wait for pipeline-svc's response headers, in ms (a streamed body may then
    /// flow for as long as it lasts).
    #[arg(long, env = "GATEWAY_UPSTREAM_TIMEOUT_MS", default_value_t = 30_000)]
    pub upstream_timeout_ms: u64,
    /// Requests per second each client address may send to /api/v1 after its burst; 0 turns
    /// the limit off.
    #[arg(long, env = "GATEWAY_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,
    /// Requests a client address may send at once before the rate applies.
    #[arg(long, env = "GATEWAY_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,
    /// `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: LogFormat,
    /// A connection that has not sent a request's complete headers within this many ms is
    /// closed (SPEC §15: 10 s); the same deadline closes an idle kept-alive connection.
    #[arg(long, env = "GATEWAY_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// A request body that sends nothing for this many ms is cut: 408.
    #[arg(long, env = "GATEWAY_BODY_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_idle_timeout_ms: u64,
    /// Client connections open at once; more are closed as soon as they are accepted. Lowered
    /// at start to what the open-file limit leaves room for (two descriptors a connection).
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Mark the web UI's session cookie `Secure` (sent over https only): set it when the
    /// gateway is reached through an https proxy.
    #[arg(long, env = "GATEWAY_UI_SECURE_COOKIE", default_value_t = false)]
    pub ui_secure_cookie: bool,
    /// Client connections open at once from one client address (IPv6: one /64); more are
    /// closed as soon as they are accepted.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
}

impl Config {
    /// Defaults for a given pipeline-svc, for tests and embedding.
    pub fn for_pipeline(url: impl Into<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pipeline_url: url.into(),
            api_token: None,
            body_limit: 1024 * 1024,
            webhook_body_limit: 25 * 1024 * 1024,
            upstream_timeout_ms: 30_000,
            rate_limit: 100,
            rate_burst: 200,
            log_format: LogFormat::Pretty,
            header_timeout_ms: 10_000,
            body_idle_timeout_ms: 30_000,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            ui_secure_cookie: false,
        }
    }
}
