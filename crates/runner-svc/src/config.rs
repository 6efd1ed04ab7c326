//! Configuration from flags or environment (SPEC §8).

use gitweave_engine::checkout::DEFAULT_HELPER_IMAGE;
use gitweave_engine::docker::{DEFAULT_JOB_PIDS, Limits, PullPolicy};
use gitweave_engine::sandbox::JobNetwork;
use gitweave_http::LogFormat;
use gitweave_model::duration::parse_duration;
use gitweave_model::labels::Labels;
use gitweave_model::resources::{Cpus, Memory, Resources};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// gets its own). Never Docker's default bridge: loopback only, or the run's own network
    /// with `RUNNER_JOB_EGRESS`.
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
    /// Local clone URLs (`file://…` or a path) must resolve (symlinks and `..` followed) to a
    /// git repository under this directory; unset, they are refused. For the docker engine
    /// the path is one on the Docker host, which the runner must see at the same path.
    #[arg(long, env = "RUNNER_LOCAL_REPO_ROOT")]
    pub local_repo_root: Option<PathBuf>,
    /// Bytes of log kept per attempt (SPEC §15); past it the job goes on, its output is
    /// dropped, and the log ends with a `[gitweave] log truncated at …` line.
    #[arg(long, env = "RUNNER_LOG_LIMIT", default_value_t = DEFAULT_LOG_LIMIT)]
    pub log_limit: u64,
    /// On SIGTERM, how long running jobs may take to end by themselves before they are
    /// stopped and handed back to pipeline-svc (queued again as a new attempt), e.g. `30s`.
    #[arg(long, env = "RUNNER_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// How long the runner keeps retrying log chunks and a job's end while pipeline-svc does
    /// not answer (the job's output waits on disk under `RUNNER_WORKDIR`), e.g. `15m`.
    #[arg(long, env = "RUNNER_OUTAGE_TOLERANCE", default_value = "15m", value_parser = parse_duration)]
    pub outage_tolerance: Duration,
    /// Docker engine: the most processes (and threads) a job container may hold at once.
    #[arg(long, env = "RUNNER_JOB_PIDS", default_value_t = DEFAULT_JOB_PIDS, value_parser = clap::value_parser!(i64).range(1..))]
    pub job_pids: i64,
    /// Docker engine: each job's memory limit and the most a job's `resources.memory` may
    /// ask for (`512m`, `2g`; unset: no limit). Past it the job is OOM killed (`oom_killed`).
    #[arg(long, env = "RUNNER_JOB_MEMORY")]
    pub job_memory: Option<Memory>,
    /// Docker engine: each job's CPU limit and the most a job's `resources.cpus` may ask
    /// for (`1.5`; unset: no limit).
    #[arg(long, env = "RUNNER_JOB_CPUS")]
    pub job_cpus: Option<Cpus>,
    /// Docker engine: give each run a bridge network with NAT, so jobs reach the internet
    /// (public addresses only: the private ranges and the network's gateway are refused by
    /// routes in the run's sandbox). Needs `RUNNER_JOB_NETWORK=run` and `ip` in the helper
    /// image. Unset: a run's containers have only loopback.
    #[arg(long, env = "RUNNER_JOB_EGRESS", default_value_t = false, action = clap::ArgAction::Set)]
    pub job_egress: bool,
    /// How often the runner removes the workspaces it holds whose run has ended or is
    /// unknown to pipeline-svc (also once at start), e.g. `60s`.
    #[arg(long, env = "RUNNER_WORKSPACE_SWEEP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub workspace_sweep_interval: Duration,
    /// This runner's labels (SPEC §13), `key=value` pairs separated by commas, e.g.
    /// `gpu=true,zone=a`. `engine`, `os`, `arch` and `runner` are added by GitWeave.
    #[arg(long, env = "RUNNER_LABELS", default_value = "", value_parser = parse_labels)]
    pub labels: Labels,
    /// Which host holds the workspaces this runner makes (runners that share a Docker
    /// engine and a `RUNNER_WORKDIR` share it). Default: the Docker engine's id (docker),
    /// else `/etc/machine-id`, else the runner's name.
    #[arg(long, env = "RUNNER_HOST_ID")]
    pub host_id: Option<String>,
}

fn parse_labels(s: &str) -> Result<Labels, String> {
    gitweave_model::labels::parse_runner_labels(s)
}

/// `RUNNER_LOG_LIMIT`'s default: 100 MiB.
pub const DEFAULT_LOG_LIMIT: u64 = 100 * 1024 * 1024;

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
            local_repo_root: None,
            log_limit: DEFAULT_LOG_LIMIT,
            shutdown_grace: Duration::from_secs(30),
            outage_tolerance: Duration::from_secs(15 * 60),
            job_pids: DEFAULT_JOB_PIDS,
            job_memory: None,
            job_cpus: None,
            job_egress: false,
            workspace_sweep_interval: Duration::from_secs(60),
            labels: Labels::new(),
            host_id: None,
        }
    }

    /// What each job container may use.
    pub fn job_limits(&self) -> Limits {
        Limits {
            pids: self.job_pids,
            max: Resources {
                memory: self.job_memory,
                cpus: self.job_cpus,
            },
        }
    }

    /// The configured host id, else `engine_id` (the Docker engine's), else the machine id,
    /// else the runner's name.
    pub fn host_id(&self, engine_id: Option<String>) -> String {
        self.host_id.clone().or(engine_id).unwrap_or_else(|| {
            std::fs::read_to_string("/etc/machine-id")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| self.runner_name())
        })
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

#[cfg(test)]
mod tests {
    use super::Config;
    use clap::Parser;

    #[test]
    fn job_limits_come_from_their_settings() {
        let c = Config::try_parse_from(["runner-svc"]).expect("defaults");
        let limits = c.job_limits();
        assert_eq!(limits.pids, 4096);
        assert_eq!((limits.max.memory, limits.max.cpus), (None, None));
        assert!(!c.job_egress);

        let c = Config::try_parse_from([
            "runner-svc",
            "--job-pids",
            "100",
            "--job-memory",
            "2g",
            "--job-cpus",
            "1.5",
            "--job-egress",
            "true",
        ])
        .expect("valid");
        let limits = c.job_limits();
        assert_eq!(limits.pids, 100);
        assert_eq!(limits.max.memory.map(|m| m.bytes()), Some(2 << 30));
        assert_eq!(limits.max.cpus.map(|c| c.nanos()), Some(1_500_000_000));
        assert!(c.job_egress);

        for bad in [
            ["--job-pids", "0"],
            ["--job-memory", "lots"],
            ["--job-cpus", "-1"],
        ] {
            let args = ["runner-svc", bad[0], bad[1]];
            assert!(Config::try_parse_from(args).is_err(), "{bad:?} is refused");
        }
    }
}
