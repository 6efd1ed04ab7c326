//! Configuration from flags or environment (SPEC §8).

use gitweave_http::LogFormat;
use std::net::SocketAddr;

/// pipeline-svc settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "pipeline-svc", version, about = "GitWeave pipeline service")]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "PIPELINE_ADDR", default_value = "0.0.0.0:8081")]
    pub addr: SocketAddr,
    /// Postgres URL; migrations run at start-up.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Runners must present this to register; unset means open registration.
    #[arg(long, env = "RUNNER_REGISTRATION_TOKEN", hide_env_values = true)]
    pub runner_registration_token: Option<String>,
    /// Refuse templates whose jobs have no image (the docker engine needs one).
    #[arg(long, env = "PIPELINE_REQUIRE_IMAGE", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_image: bool,
    /// How long a runner's hold on a job lasts without a heartbeat.
    #[arg(long, env = "PIPELINE_LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u64,
    /// How often to look for running jobs whose lease ran out (their runner is lost).
    #[arg(long, env = "PIPELINE_REAPER_INTERVAL_MS", default_value_t = 5_000)]
    pub reaper_interval_ms: u64,
    /// Base of the retry backoff (doubles each attempt, at most 60 s, ±10% jitter).
    #[arg(long, env = "PIPELINE_RETRY_BASE_MS", default_value_t = 2_000)]
    pub retry_base_ms: u64,
    /// Largest Postgres pool.
    #[arg(long, env = "PIPELINE_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
    /// `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: LogFormat,
    /// Delete ended runs (with their jobs, logs, events and deliveries) whose end is older
    /// than this many days; unset keeps them forever.
    #[arg(long, env = "PIPELINE_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,
    /// Seconds between retention passes; the first runs after this or 30 s, whichever is
    /// shorter.
    #[arg(long, env = "PIPELINE_RETENTION_INTERVAL_S", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_interval_s: u64,
}

impl Config {
    /// The retry backoff base.
    pub fn retry_base(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.retry_base_ms)
    }

    /// How long ended runs are kept, when they are not kept forever.
    pub fn retention(&self) -> Option<time::Duration> {
        self.retention_days
            .map(|d| time::Duration::days(i64::from(d)))
    }

    /// Defaults for a given database, for tests and embedding.
    pub fn for_database(url: impl Into<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: url.into(),
            runner_registration_token: None,
            require_image: true,
            lease_ms: 30_000,
            retry_base_ms: 2_000,
            reaper_interval_ms: 5_000,
            db_max_connections: 20,
            log_format: LogFormat::Pretty,
            retention_days: None,
            retention_interval_s: 3600,
        }
    }
}
