//! Building and running the runner: engine, registration, the health listener, and the slots.

use crate::client::PipelineClient;
use crate::config::{Config, EngineKind};
use crate::executor::Executor;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gitweave_api::error_code;
use gitweave_api::runner::RegisterRequest;
use gitweave_engine::Engine;
use gitweave_engine::docker::DockerEngine;
use gitweave_engine::sandbox::JobNetwork;
use gitweave_engine::shell::ShellEngine;
use gitweave_http::{Metrics, error_response};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Long-poll budget of one claim.
const CLAIM_WAIT: Duration = Duration::from_secs(25);

/// A registered runner, not yet taking jobs.
pub struct App {
    config: Config,
    executor: Executor,
    listener: TcpListener,
    name: String,
}

#[derive(Clone)]
struct HealthState {
    engine: Arc<dyn Engine>,
    metrics: Metrics,
}

impl App {
    /// Connects the engine, removes what an earlier life of this runner left, registers.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        config.registration_token = gitweave_http::secret::resolve(
            config.registration_token.take(),
            config.registration_token_file.as_deref(),
            "RUNNER_REGISTRATION_TOKEN_FILE",
        )?;
        let name = config.runner_name();
        if config.job_egress && config.job_network == JobNetwork::Job {
            anyhow::bail!(
                "RUNNER_JOB_EGRESS=true needs RUNNER_JOB_NETWORK=run: a run's network is guarded by routes set in its sandbox's namespace, which the jobs of the run share (docs/SECURITY.md)"
            );
        }
        let (engine, engine_id): (Arc<dyn Engine>, Option<String>) = match config.engine {
            EngineKind::Docker => {
                let docker =
                    DockerEngine::connect(&name, config.pull_policy, &config.container_prefix)
                        .await?
                        .with_helper_image(&config.helper_image)
                        .with_limits(config.job_limits())
                        .with_job_network(
                            config.job_network,
                            config.job_egress,
                            config.concurrency.max(1) as usize + 1,
                        );
                let id = match config.host_id {
                    Some(_) => None,
                    None => docker.engine_id().await,
                };
                (Arc::new(docker), id)
            }
            EngineKind::Shell => (Arc::new(ShellEngine::new(&config.workdir)), None),
        };
        let host_id = config.host_id(engine_id);
        engine.ping().await?;
        let removed = engine.remove_leftovers().await?;
        if removed > 0 {
            tracing::warn!(
                removed,
                "removed containers left by an earlier run of this runner"
            );
        }
        engine.warm_up().await;
        // Spools of an earlier life of this runner belong to attempts pipeline-svc has taken
        // back as lost by now. One directory per runner name: runners may share a workdir.
        let spool_dir = config.workdir.join("spool").join(&name);
        if let Err(e) = std::fs::remove_dir_all(&spool_dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %spool_dir.display(), error = %e, "could not remove old log spools");
        }
        let (client, reg) = PipelineClient::register(
            &config.pipeline_url,
            config.registration_token.as_deref(),
            &RegisterRequest {
                name: name.clone(),
                capacity: config.concurrency.max(1),
                engine: engine.name().to_owned(),
                labels: config.labels.clone(),
                os: Some(std::env::consts::OS.to_owned()),
                arch: Some(std::env::consts::ARCH.to_owned()),
                host_id: Some(host_id.clone()),
            },
        )
        .await?;
        let client = client.with_outage_tolerance(config.outage_tolerance);
        // Workspaces of runs that ended while this runner was away (or on other runners).
        crate::sweep::log_outcome(crate::sweep::sweep(engine.as_ref(), &client).await);
        tracing::info!(runner.id = %reg.runner_id, runner.name = %name, engine = engine.name(), concurrency = config.concurrency, host_id = %host_id, "registered");
        let listener = TcpListener::bind(config.addr).await?;
        let metrics = Metrics::new();
        metrics.describe("runner_jobs_total", "Job attempts run, by result.");
        metrics.describe("runner_jobs_running", "Job attempts running now.");
        metrics.gauge_set("runner_jobs_running", 0);
        Ok(Self {
            executor: Executor {
                engine,
                client,
                heartbeat: Duration::from_millis(reg.heartbeat_interval_ms),
                metrics,
                cleanup: TaskTracker::new(),
                log_limit: config.log_limit,
                spool_dir,
                grace: config.shutdown_grace,
                local_repo_root: config.local_repo_root.clone(),
                held: Arc::default(),
            },
            config,
            listener,
            name,
        })
    }

    /// The health listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes and runs jobs until `shutdown` resolves; then stops taking jobs, lets the ones
    /// running finish and report, and leaves no container behind.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let health = Router::new()
            .route(
                "/healthz",
                get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
            )
            .route("/readyz", get(readyz))
            .route(
                "/metrics",
                get(|State(s): State<HealthState>| async move { s.metrics.response() }),
            )
            .fallback(gitweave_http::error::not_found_fallback)
            .with_state(HealthState {
                engine: self.executor.engine.clone(),
                metrics: self.executor.metrics.clone(),
            });
        let health_stop = stop.clone();
        let health_task = tokio::spawn(async move {
            axum::serve(gitweave_http::no_delay(self.listener), health)
                .with_graceful_shutdown(async move { health_stop.cancelled().await })
                .await
        });

        let slots = TaskTracker::new();
        let abandon = CancellationToken::new();
        for slot in 0..self.config.concurrency.max(1) {
            let executor = self.executor.clone();
            let (stop, abandon) = (stop.clone(), abandon.clone());
            slots.spawn(async move { run_slot(slot, executor, stop, abandon).await });
        }
        slots.close();
        let sweeper = tokio::spawn(crate::sweep::run_forever(
            self.executor.engine.clone(),
            self.executor.client.clone(),
            self.config.workspace_sweep_interval,
            stop.clone(),
        ));
        shutdown.await;
        tracing::info!(
            grace_ms = self.config.shutdown_grace.as_millis() as u64,
            "stopping: no new jobs; the running ones get the grace to finish, then are handed back"
        );
        stop.cancel();
        // Claims in flight are not abandoned while pipeline-svc can be told (it may be
        // assigning a job right now): it ends them, and a job that arrives anyway is run (or
        // handed back). When it cannot be told within a short timeout (it is stopping too, or
        // down), the claims are abandoned here: a job it assigned meanwhile is taken back when
        // its lease runs out.
        if let Err(e) = self.executor.client.stop().await {
            tracing::warn!(error = %e, "could not tell pipeline-svc that this runner stops; abandoning its claims");
            abandon.cancel();
        }
        slots.wait().await;
        let _ = sweeper.await;
        self.executor.cleanup.close();
        self.executor.cleanup.wait().await;
        match self.executor.engine.remove_leftovers().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(removed = n, "removed leftover containers"),
            Err(e) => tracing::warn!(error = %e, "could not check for leftover containers"),
        }
        let _ = health_task.await;
        tracing::info!("runner-svc stopped");
        Ok(())
    }
}

async fn readyz(State(s): State<HealthState>) -> Response {
    match s.engine.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready", "engine": s.engine.name() }))
            .into_response(),
        Err(e) => error_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            error_code::UNAVAILABLE,
            e.to_string(),
        ),
    }
}

async fn run_slot(
    slot: u32,
    executor: Executor,
    stop: CancellationToken,
    abandon: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    // A claim whose answer never arrived is sent again under the same id: if it took a job,
    // the same attempt comes back (pipeline-svc died between its commit and its reply).
    let mut claim_id = uuid::Uuid::new_v4();
    let mut repeat = false;
    while !stop.is_cancelled() {
        let claimed = tokio::select! {
            claimed = executor.client.claim(CLAIM_WAIT, claim_id, repeat) => claimed,
            () = abandon.cancelled() => break,
        };
        if claimed.is_ok() {
            claim_id = uuid::Uuid::new_v4();
            repeat = false;
        }
        match claimed {
            Ok(Some(a)) => {
                backoff = Duration::from_millis(100);
                executor.run(a, &stop).await;
            }
            Ok(None) => {}
            Err(e) => {
                // Only a request that may have reached pipeline-svc can have taken a job;
                // sending the id again is harmless either way.
                repeat = true;
                tracing::warn!(slot, error = %e, retry_in_ms = backoff.as_millis() as u64, "claiming failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {},
                    () = stop.cancelled() => break,
                }
                // At most a second: the claim may hold a job whose lease runs meanwhile.
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
