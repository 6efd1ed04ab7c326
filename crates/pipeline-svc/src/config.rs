//! Configuration from flags or environment (SPEC §8).

use gitweave_http::LogFormat;
use gitweave_http::secret::{self, SecretFileError};
use std::net::SocketAddr;
use std::path::PathBuf;

/// pipeline-svc settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "pipeline-svc", version, about = "GitWeave pipeline service")]
pub struct Config {
    /// Address to listen on (port 0 picks a free port). Loopback by default: only the gateway
    /// and runners talk to pipeline-svc (compose sets `0.0.0.0:8081` on its private network).
    #[arg(long, env = "PIPELINE_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,
    /// Postgres URL; migrations run at start-up.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Runners must present this to register. Unset (and no `RUNNER_REGISTRATION_TOKEN_FILE`):
    /// registration is refused unless `PIPELINE_INSECURE_OPEN_REGISTRATION=true`.
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
    /// Bearer token every `/api/v1` request needs (webhooks excepted: their HMAC authenticates
    /// them); the same value as the gateway's. Unset or empty: no token is asked for.
    #[arg(long, env = "GITWEAVE_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// A file holding `GITWEAVE_API_TOKEN` (used when the variable is unset).
    #[arg(long, env = "GITWEAVE_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// A file holding `RUNNER_REGISTRATION_TOKEN` (used when the variable is unset).
    #[arg(long, env = "RUNNER_REGISTRATION_TOKEN_FILE")]
    pub runner_registration_token_file: Option<PathBuf>,
    /// Let any runner register without a token when `RUNNER_REGISTRATION_TOKEN` is unset.
    /// Anyone who reaches pipeline-svc can then take jobs (and their secrets): for a laptop.
    #[arg(long, env = "PIPELINE_INSECURE_OPEN_REGISTRATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub insecure_open_registration: bool,
    /// The directory local clone URLs (`file://…` or an absolute path) must be under, after
    /// symlinks and `..` are resolved; unset: local clone URLs are refused.
    #[arg(long, env = "RUNNER_LOCAL_REPO_ROOT")]
    pub local_repo_root: Option<PathBuf>,
    /// A followed SSE stream with nothing to send writes a `: keep-alive` comment after this
    /// many ms, so a proxy does not cut it for being idle.
    #[arg(long, env = "PIPELINE_SSE_KEEPALIVE_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub sse_keepalive_ms: u64,
    /// The key secrets are sealed with (SPEC §10): 32 bytes, standard base64. Unset (and no
    /// `GITWEAVE_SECRETS_KEY_FILE`): the key file `secrets.key` in `PIPELINE_DATA_DIR`, made
    /// on first start.
    #[arg(long, env = "GITWEAVE_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// The previous secrets key, only while rotating: when the database's secrets are sealed
    /// under it, they are re-sealed under the current key at start (docs/SECURITY.md).
    #[arg(long, env = "GITWEAVE_SECRETS_OLD_KEY", hide_env_values = true)]
    pub secrets_old_key: Option<String>,
    /// A file holding `GITWEAVE_SECRETS_KEY` (used when the variable is unset).
    #[arg(long, env = "GITWEAVE_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Where pipeline-svc keeps its own files (the secrets key file when
    /// `GITWEAVE_SECRETS_KEY` is unset). Keep it on a volume and back it up.
    #[arg(long, env = "PIPELINE_DATA_DIR", default_value = "/var/lib/gitweave")]
    pub data_dir: PathBuf,
    /// Whether a run's pipeline may come from `.gitweave.yml` at its commit (SPEC §9).
    /// `false`: only attached templates run, and no repo's git server is read for a file
    /// (an operator who wants branches unable to change their own build).
    #[arg(long, env = "PIPELINE_REPO_FILE", default_value_t = true, action = clap::ArgAction::Set)]
    pub repo_file: bool,
    /// Where artifacts and cache archives are stored (SPEC §11): `file:///abs/dir`, or
    /// `s3://bucket[/prefix]` with the usual `AWS_*` variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP` for a local store). Unset: `file://<PIPELINE_DATA_DIR>/objects`.
    #[arg(long, env = "PIPELINE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// The largest artifact file or cache archive accepted, in bytes.
    #[arg(long, env = "PIPELINE_ARTIFACT_MAX_BYTES", default_value_t = 4 << 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub artifact_max_bytes: u64,
    /// Cache bytes kept per repo; past it, the least recently used entries go first.
    #[arg(long, env = "PIPELINE_CACHE_MAX_BYTES", default_value_t = 10 << 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_bytes: u64,
    /// Seconds between passes of the artifact and cache sweeper.
    #[arg(long, env = "PIPELINE_SWEEP_INTERVAL_S", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub sweep_interval_s: u64,
    /// Seconds an object nothing names is kept after it was last written or named, before
    /// the sweeper deletes it (an upload names its object just after writing it).
    #[arg(long, env = "PIPELINE_OBJECT_GRACE_S", default_value_t = 3600)]
    pub object_grace_s: u64,
}

impl Config {
    /// Reads the `*_FILE` secrets into their settings (a set variable wins) and turns empty
    /// values into unset ones. [`crate::App::build`] calls it.
    pub fn resolve_secrets(&mut self) -> Result<(), SecretFileError> {
        self.api_token = secret::resolve(
            self.api_token.take(),
            self.api_token_file.as_deref(),
            "GITWEAVE_API_TOKEN_FILE",
        )?;
        self.runner_registration_token = secret::resolve(
            self.runner_registration_token.take(),
            self.runner_registration_token_file.as_deref(),
            "RUNNER_REGISTRATION_TOKEN_FILE",
        )?;
        self.secrets_key = secret::resolve(
            self.secrets_key.take(),
            self.secrets_key_file.as_deref(),
            "GITWEAVE_SECRETS_KEY_FILE",
        )?;
        self.local_repo_root = self
            .local_repo_root
            .take()
            .filter(|p| !p.as_os_str().is_empty());
        Ok(())
    }

    /// `PIPELINE_OBJECT_STORE`, or the directory under the data dir.
    pub fn object_store_url(&self) -> String {
        match &self.object_store {
            Some(u) if !u.is_empty() => u.clone(),
            _ => format!("file://{}", self.data_dir.join("objects").display()),
        }
    }

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
            api_token: None,
            api_token_file: None,
            runner_registration_token_file: None,
            insecure_open_registration: false,
            local_repo_root: None,
            sse_keepalive_ms: 15_000,
            secrets_key: None,
            secrets_key_file: None,
            secrets_old_key: None,
            // One key file for every instance a test starts, so a restart on the same
            // database finds the key its secrets were sealed with.
            data_dir: std::env::temp_dir().join("gitweave-pipeline-data"),
            repo_file: true,
            object_store: None,
            artifact_max_bytes: 4 << 30,
            cache_max_bytes: 10 << 30,
            sweep_interval_s: 300,
            object_grace_s: 3600,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use clap::Parser;

    #[test]
    fn defaults_are_closed() {
        // Flags only: an environment variable of the same name would win over a default.
        let c = Config::try_parse_from(["pipeline-svc", "--database-url", "postgres://x/y"])
            .expect("parses");
        if std::env::var_os("PIPELINE_ADDR").is_none() {
            assert_eq!(c.addr.to_string(), "127.0.0.1:8081", "loopback by default");
        }
        if std::env::var_os("PIPELINE_INSECURE_OPEN_REGISTRATION").is_none() {
            assert!(!c.insecure_open_registration);
        }
    }

    #[test]
    fn secrets_come_from_files_when_the_variables_are_empty() {
        let dir = std::env::temp_dir().join(format!("gw-pcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("reg"), "reg-from-file\n").expect("write");
        std::fs::write(dir.join("api"), "api-from-file").expect("write");
        let mut c = Config::for_database("postgres://x/y");
        c.runner_registration_token = Some(String::new());
        c.runner_registration_token_file = Some(dir.join("reg"));
        c.api_token_file = Some(dir.join("api"));
        c.local_repo_root = Some(std::path::PathBuf::new());
        c.resolve_secrets().expect("resolves");
        assert_eq!(
            c.runner_registration_token.as_deref(),
            Some("reg-from-file")
        );
        assert_eq!(c.api_token.as_deref(), Some("api-from-file"));
        assert_eq!(c.local_repo_root, None, "empty is unset");
        let mut c = Config::for_database("postgres://x/y");
        c.api_token = Some("from-env".into());
        c.api_token_file = Some(dir.join("api"));
        c.resolve_secrets().expect("resolves");
        assert_eq!(
            c.api_token.as_deref(),
            Some("from-env"),
            "the variable wins"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
