//! Configuration from flags or environment (SPEC §8).

use gitweave_engine::checkout::DEFAULT_HELPER_IMAGE;
use gitweave_engine::docker::PullPolicy;
use gitweave_engine::sandbox::JobNetwork;
use gitweave_http::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Which engine runs jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    /// A container per job through the Docker Engine API.
    Docker,
    /// Host processes, no isolation.
    Shell,
}

/// runner-svc settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "runner-svc", version, about = "GitWeave runner service")]
pub struct Config {
    /// pipeline-svc's base URL.
    #[arg(
        long,
        env = "PIPELINE_SVC_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub pipeline_url: String,
    /// Shared secret for registration.
    #[arg(long, env = "RUNNER_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,
    /// This runner's name (default: the host name).
    #[arg(long, env = "RUNNER_NAME")]
    pub name: Option<String>,
    /// `docker` or `shell`.
    #[arg(
        long,
        env = "RUNNER_CONTAINER_ENGINE",
        value_enum,
        default_value = "docker"
    )]
    pub engine: EngineKind,
    /// Where the shell engine keeps workspaces.
    #[arg(long, env = "RUNNER_WORKDIR", default_value = "/tmp/gitweave-runs")]
    pub workdir: PathBuf,
    /// Jobs run at once.
    #[arg(long, env = "RUNNER_CONCURRENCY", default_value_t = 1)]
    pub concurrency: u32,
    /// `if-not-present` or `never`.
    #[arg(long, env = "RUNNER_PULL_POLICY", default_value = "if-not-present")]
    pub pull_policy: PullPolicy,
    /// Image of the docker engine's checkout helper: any image with `/bin/sh` and `git`
    /// (build the default with `docker build -t gitweave-git:latest scripts/git-image`).
    #[arg(long, env = "RUNNER_HELPER_IMAGE", default_value = DEFAULT_HELPER_IMAGE)]
    pub helper_image: String,
    /// Docker engine: `run` (the jobs of a run share one network namespace, held by a sandbox
    /// container of the helper image; containers start faster) or `job` (every job container
    /// gets its own on Docker's default bridge).
    #[arg(long, env = "RUNNER_JOB_NETWORK", default_value = "run")]
    pub job_network: JobNetwork,
    /// Prefix of the containers and volumes this runner makes.
    #[arg(long, env = "RUNNER_CONTAINER_PREFIX", default_value = "gitweave-")]
    pub container_prefix: String,
    /// Address of `/healthz`, `/readyz` and `/metrics` (port 0 picks one).
    #[arg(long, env = "RUNNER_ADDR", default_value = "0.0.0.0:8082")]
    pub addr: SocketAddr,
    /// `json` or `pretty`.
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    pub log_format: LogFormat,
    /// A file holding `RUNNER_REGISTRATION_TOKEN` (used when the variable is unset).
    #[arg(long, env = "RUNNER_REGISTRATION_TOKEN_FILE")]
    pub registration_token_file: Option<PathBuf>,
}

impl Config {
    /// Defaults for a given pipeline-svc, for tests and embedding.
    pub fn for_pipeline(url: impl Into<String>, engine: EngineKind) -> Self {
        Self {
            pipeline_url: url.into(),
            registration_token: None,
            name: None,
            engine,
            workdir: std::env::temp_dir().join("gitweave-runs"),
            concurrency: 1,
            pull_policy: PullPolicy::Never,
            helper_image: DEFAULT_HELPER_IMAGE.into(),
            job_network: JobNetwork::Run,
            container_prefix: "gitweave-".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_format: LogFormat::Pretty,
            registration_token_file: None,
        }
    }

    /// The configured name, or the host name.
    pub fn runner_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "runner".into())
        })
    }
}
