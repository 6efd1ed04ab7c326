//! Building and running the service: pool, migrations (retried while Postgres starts), the
//! listener (bound to the configured address, port 0 allowed), then serving until asked to stop.

use crate::config::Config;
use crate::routes;
use crate::secret_box::{self, KeySource, SecretBox};
use crate::state::AppState;
use gitweave_http::Metrics;
use gitweave_storage::PoolConfig;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// A built, bound, not yet serving pipeline-svc.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

/// How long requests in flight may take to finish once the service stops (kept well inside
/// the 10 s `docker compose down` waits before SIGKILL).
const DRAIN: Duration = Duration::from_secs(3);

/// Bytes of settled answers kept in memory ([`crate::settled`]).
const SETTLED_BUDGET: usize = 32 * 1024 * 1024;

impl App {
    /// Connects, migrates and binds.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        config.resolve_secrets()?;
        warn_about_open_doors(&config);
        let pool = gitweave_storage::pool(&PoolConfig {
            url: config.database_url.clone(),
            max_connections: config.db_max_connections,
            acquire_timeout: Duration::from_secs(5),
        })?;
        migrate_with_retry(&pool).await?;
        let secrets = secrets_key(&config, &pool).await?;
        // Runners could not renew leases while this service was down: do not take their jobs
        // for lost because of that.
        let extended =
            gitweave_storage::jobs::extend_running_leases(&pool, config.lease_ms as i64).await?;
        if extended > 0 {
            tracing::info!(
                jobs = extended,
                "renewed the leases of running jobs after a restart"
            );
        }
        let listener = TcpListener::bind(config.addr).await?;
        let metrics = Metrics::new();
        metrics.describe("gitweave_runs_triggered_total", "Runs created, by trigger.");
        metrics.describe(
            "gitweave_jobs_started_total",
            "Job attempts handed to runners.",
        );
        metrics.describe(
            "gitweave_jobs_finished_total",
            "Job attempts ended, by status.",
        );
        metrics.describe("gitweave_log_bytes_total", "Log bytes stored.");
        metrics.describe(
            "gitweave_job_queue_wait_seconds",
            "How long a job was due before a runner claimed it, by requirement set.",
        );
        metrics.describe(
            "gitweave_job_duration_seconds",
            "How long a job attempt ran (claim to end), by requirement set and status.",
        );
        metrics.describe("http_responses_total", "HTTP responses, by status class.");
        metrics.describe(
            "gitweave_webhooks_total",
            "Webhook deliveries, by provider and result.",
        );
        metrics.describe(
            crate::retention::DELETED_METRIC,
            "Ended runs deleted by retention (PIPELINE_RETENTION_DAYS).",
        );
        let (job_updates, _) = broadcast::channel(4096);
        let (run_updates, _) = broadcast::channel(4096);
        let retention = config.retention();
        let config_data_dir = config.data_dir.clone();
        let objects = gitweave_objects::Objects::from_url(&config.object_store_url())
            .map_err(|e| anyhow::anyhow!("PIPELINE_OBJECT_STORE: {e}"))?;
        let state = AppState {
            pool,
            config: Arc::new(config),
            waiters: Arc::default(),
            job_updates,
            run_updates,
            runner_cache: Arc::default(),
            stopping_runners: Arc::default(),
            claim_locks: Arc::default(),
            runner_contact: Arc::default(),
            runner_lost: Arc::default(),
            metrics,
            settled: Arc::new(
                crate::settled::Settled::new(SETTLED_BUDGET).with_retention(retention),
            ),
            shutting_down: Arc::default(),
            secrets: Arc::new(secrets),
            mirrors: Arc::new(crate::mirror::Mirrors::new(&config_data_dir)),
            objects,
        };
        Ok(Self { listener, state })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests reach the pool through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, answers the runners' waiting
    /// claims "no job" at once, and finishes the other requests in flight for at most
    /// [`DRAIN`] (a follower of a log or of events that never ends would hold it up forever).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "pipeline-svc listening");
        let router = routes::router(self.state.clone());
        let reaper = tokio::spawn(reap_forever(self.state.clone()));
        let retention = tokio::spawn(crate::retention::run_forever(self.state.clone()));
        let sweeper = tokio::spawn(crate::sweeper::run_forever(self.state.clone()));
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let state = self.state.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("stopping: no new connections; ending runners' long-polls");
            state.begin_shutdown();
            let _ = stopping_tx.send(());
        };
        let serve = axum::serve(gitweave_http::no_delay(self.listener), router)
            .with_graceful_shutdown(signal)
            .into_future();
        tokio::pin!(serve);
        tokio::select! {
            served = &mut serve => served?,
            () = async {
                let _ = stopping_rx.await;
                tokio::time::sleep(DRAIN).await;
            } => {
                tracing::warn!(drain_ms = DRAIN.as_millis() as u64, "requests still open after the drain period; closing them");
            }
        }
        reaper.abort();
        retention.abort();
        sweeper.abort();
        self.state.pool.close().await;
        tracing::info!("pipeline-svc stopped");
        Ok(())
    }
}

/// Says loudly, once at start, what is left open.
fn warn_about_open_doors(config: &Config) {
    match (
        &config.runner_registration_token,
        config.insecure_open_registration,
    ) {
        (None, true) => tracing::warn!(
            "PIPELINE_INSECURE_OPEN_REGISTRATION=true and no RUNNER_REGISTRATION_TOKEN: ANY client that reaches pipeline-svc can register as a runner and take jobs, with their secrets. Set RUNNER_REGISTRATION_TOKEN (or RUNNER_REGISTRATION_TOKEN_FILE) on pipeline-svc and runner-svc instead."
        ),
        (None, false) => tracing::warn!(
            "no RUNNER_REGISTRATION_TOKEN: runner registration is refused; set RUNNER_REGISTRATION_TOKEN (or RUNNER_REGISTRATION_TOKEN_FILE) on pipeline-svc and runner-svc"
        ),
        (Some(_), true) => tracing::info!(
            "PIPELINE_INSECURE_OPEN_REGISTRATION is ignored: RUNNER_REGISTRATION_TOKEN is set"
        ),
        (Some(_), false) => {}
    }
    if config.api_token.is_none() {
        tracing::info!(
            "no GITWEAVE_API_TOKEN: /api/v1 needs no token (keep PIPELINE_ADDR private)"
        );
    }
}

/// The secrets key, checked against the database (a wrong key stops the start here).
async fn secrets_key(config: &Config, pool: &sqlx::PgPool) -> anyhow::Result<SecretBox> {
    let (b, source) = secret_box::load_key(config.secrets_key.as_deref(), &config.data_dir)?;
    match &source {
        KeySource::NewKeyFile(path) => tracing::warn!(
            path = %path.display(),
            "no GITWEAVE_SECRETS_KEY: made a new secrets key file; back it up, the secrets stored here cannot be read without it"
        ),
        KeySource::KeyFile(path) => {
            tracing::info!(path = %path.display(), "secrets key read from the key file");
        }
        KeySource::Setting => {}
    }
    let old = config
        .secrets_old_key
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| SecretBox::from_base64(k, "GITWEAVE_SECRETS_OLD_KEY"))
        .transpose()?;
    let resealed = secret_box::check_against(pool, &b, old.as_ref()).await?;
    if resealed > 0 || old.is_some() {
        tracing::info!(
            secrets = resealed,
            "GITWEAVE_SECRETS_OLD_KEY: the database's secrets are sealed under the current key; remove GITWEAVE_SECRETS_OLD_KEY"
        );
    }
    Ok(b)
}

async fn migrate_with_retry(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match gitweave_storage::migrate(pool).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(e))
                if matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Takes back the attempts of lost runners, every `reaper_interval_ms`.
async fn reap_forever(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        state.config.reaper_interval_ms.max(50),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = crate::orchestrator::reap_expired(&state).await {
            tracing::warn!(error = %e, "looking for lost runners failed");
        }
    }
}
