//! The stack under test: a throw-away Postgres (`scripts/pg-throwaway.sh`) and the release
//! binaries of pipeline-svc, api-gateway and runner-svc as child processes on free loopback
//! ports, each logging to a file in the bench's work directory.
//!
//! `GITWEAVE_BENCH_BIN_DIR` points it at other binaries (e.g. `target/debug`, to check that
//! a workload works without a release build; such numbers are not measurements).

use anyhow::{Context, bail};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Name prefix of the containers and volumes the bench's runners make.
pub const CONTAINER_PREFIX: &str = "gwbench-";

/// pipeline-svc's object store, below the work directory.
const OBJECTS: &str = "objects";

/// `cargo build --release --workspace --bins`.
pub async fn build_release(root: &Path) -> anyhow::Result<()> {
    eprintln!("bench: cargo build --release --workspace --bins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--workspace", "--bins"])
        .current_dir(root)
        .stdin(Stdio::null())
        .status()
        .await
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    Ok(())
}

/// Where the service binaries are: `GITWEAVE_BENCH_BIN_DIR`, else `target/release`.
pub fn bin_dir(root: &Path) -> PathBuf {
    match std::env::var_os("GITWEAVE_BENCH_BIN_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target/release"),
    }
}

/// `GITWEAVE_BENCH_BIN_DIR`, when the binaries are not the release build.
pub fn custom_bin_dir() -> Option<String> {
    std::env::var("GITWEAVE_BENCH_BIN_DIR")
        .ok()
        .filter(|d| !d.is_empty())
}

/// A free TCP port on 127.0.0.1 (bound then released; the race is harmless here).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Which engine a runner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Containers through the Docker Engine API.
    Docker,
    /// Host processes.
    Shell,
}

impl Engine {
    /// Parses `docker` or `shell`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "docker" => Ok(Engine::Docker),
            "shell" => Ok(Engine::Shell),
            other => bail!("engine must be docker or shell, not {other:?}"),
        }
    }

    /// The `RUNNER_CONTAINER_ENGINE` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Shell => "shell",
        }
    }
}

/// One running service.
pub struct Service {
    /// `pipeline-svc`, `api-gateway`, `runner-svc docker-0`, …
    pub name: String,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    child: Child,
}

impl Service {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                eprintln!(
                    "bench: {} did not stop within {grace:?}; killing it",
                    self.name
                );
                let _ = self.child.kill().await;
            }
        }
    }
}

/// Postgres and the services.
pub struct Stack {
    /// The workspace root (where `target/release` is).
    pub root: PathBuf,
    /// The bench's work directory (logs, Postgres data, shell workspaces).
    pub dir: PathBuf,
    pg_dir: PathBuf,
    /// The throw-away Postgres (`postgres://…`), for workloads that read what the API does not
    /// show (W8: which object a cache entry names).
    pub database_url: String,
    rust_log: String,
    /// pipeline-svc.
    pub pipeline: Service,
    /// api-gateway.
    pub gateway: Service,
    /// The runners running now.
    pub runners: Vec<Service>,
}

async fn wait_healthy(
    http: &reqwest::Client,
    url: &str,
    child: &mut Child,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).timeout(Duration::from_secs(2)).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited during start-up ({status}); see its log in the bench directory");
        }
        if Instant::now() > deadline {
            bail!("{what} did not answer {url} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Stack {
    /// Starts Postgres, pipeline-svc and the gateway (no runner yet).
    pub async fn start(root: &Path, rust_log: &str) -> anyhow::Result<Self> {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let dir =
            std::env::temp_dir().join(format!("gitweave-bench-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        // Postgres runs as its own user and must reach its data directory below this one.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let pg_dir = dir.join("pg");
        let pg_port = free_port()?;
        let out = Command::new(root.join("scripts/pg-throwaway.sh"))
            .arg("start")
            .arg(&pg_dir)
            .arg(pg_port.to_string())
            .stdin(Stdio::null())
            .output()
            .await
            .context("running scripts/pg-throwaway.sh")?;
        if !out.status.success() {
            bail!(
                "scripts/pg-throwaway.sh start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let database_url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        eprintln!(
            "bench: throw-away Postgres at {database_url} ({})",
            pg_dir.display()
        );

        let bin = bin_dir(root);
        let http = reqwest::Client::new();
        let port = free_port()?;
        let mut pipeline = spawn(
            &dir,
            "pipeline-svc",
            Command::new(bin.join("pipeline-svc"))
                .env("DATABASE_URL", &database_url)
                .env("PIPELINE_ADDR", format!("127.0.0.1:{port}"))
                // The secrets key file (and anything else kept on disk) stays in the bench's
                // own directory.
                .env("PIPELINE_DATA_DIR", dir.join("pipeline-data"))
                .env(
                    "PIPELINE_OBJECT_STORE",
                    format!("file://{}", dir.join(OBJECTS).display()),
                )
                .env_remove("GITWEAVE_SECRETS_KEY")
                .env_remove("GITWEAVE_SECRETS_KEY_FILE")
                .env_remove("GITWEAVE_SECRETS_OLD_KEY")
                // Loopback only, and the bench's runners carry no token.
                .env("PIPELINE_INSECURE_OPEN_REGISTRATION", "true")
                // W6's repositories live under the stack's directory, as do the mirrors.
                .env("RUNNER_LOCAL_REPO_ROOT", &dir)
                .env("PIPELINE_DATA_DIR", dir.join("pipeline-data"))
                .env_remove("RUNNER_REGISTRATION_TOKEN")
                .env_remove("RUNNER_REGISTRATION_TOKEN_FILE")
                .env("RUST_LOG", rust_log),
            format!("http://127.0.0.1:{port}"),
        )?;
        let ready = format!("{}/readyz", pipeline.url);
        let started = wait_healthy(&http, &ready, &mut pipeline.child, "pipeline-svc").await;
        let port = free_port()?;
        let gateway = spawn(
            &dir,
            "api-gateway",
            Command::new(bin.join("api-gateway"))
                .env("PIPELINE_SVC_URL", &pipeline.url)
                .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
                // The bench drives thousands of requests per second from one address. The
                // limiter still runs on every request (its cost is measured), but never refuses.
                .env("GATEWAY_RATE_LIMIT", "1000000")
                .env("GATEWAY_RATE_BURST", "1000000")
                .env("RUST_LOG", rust_log),
            format!("http://127.0.0.1:{port}"),
        );
        let mut stack = match (started, gateway) {
            (Ok(()), Ok(gateway)) => Self {
                root: root.to_path_buf(),
                dir,
                pg_dir,
                database_url,
                rust_log: rust_log.to_owned(),
                pipeline,
                gateway,
                runners: Vec::new(),
            },
            (Err(e), _) | (_, Err(e)) => {
                pipeline.stop(Duration::from_secs(5)).await;
                stop_postgres(root, &pg_dir).await;
                return Err(e);
            }
        };
        let ready = format!("{}/readyz", stack.gateway.url);
        if let Err(e) = wait_healthy(&http, &ready, &mut stack.gateway.child, "api-gateway").await {
            stack.shutdown().await;
            return Err(e);
        }
        Ok(stack)
    }

    /// Starts a runner-svc and waits until it has registered (its health listener is bound
    /// after registration).
    pub async fn start_runner(
        &mut self,
        engine: Engine,
        name: &str,
        concurrency: u32,
    ) -> anyhow::Result<()> {
        self.start_labelled_runner(engine, name, concurrency, "")
            .await
    }

    /// [`Stack::start_runner`] with `RUNNER_LABELS`.
    pub async fn start_labelled_runner(
        &mut self,
        engine: Engine,
        name: &str,
        concurrency: u32,
        labels: &str,
    ) -> anyhow::Result<()> {
        let port = free_port()?;
        let runner_name = format!("{CONTAINER_PREFIX}{name}");
        let workdir = self.dir.join("shell-workspaces");
        let mut svc = spawn(
            &self.dir,
            &format!("runner-svc-{name}"),
            Command::new(bin_dir(&self.root).join("runner-svc"))
                .env("PIPELINE_SVC_URL", &self.pipeline.url)
                .env("RUNNER_PULL_POLICY", "never")
                .env("RUNNER_CONTAINER_ENGINE", engine.as_str())
                .env("RUNNER_CONCURRENCY", concurrency.to_string())
                .env("RUNNER_LABELS", labels)
                .env("RUNNER_NAME", &runner_name)
                .env("RUNNER_CONTAINER_PREFIX", CONTAINER_PREFIX)
                .env("RUNNER_WORKDIR", &workdir)
                .env("RUNNER_LOCAL_REPO_ROOT", &self.dir)
                .env("RUNNER_ADDR", format!("127.0.0.1:{port}"))
                .env("RUST_LOG", &self.rust_log)
                .env_remove("RUNNER_REGISTRATION_TOKEN")
                .env_remove("RUNNER_REGISTRATION_TOKEN_FILE"),
            format!("http://127.0.0.1:{port}"),
        )?;
        let http = reqwest::Client::new();
        let health = format!("{}/healthz", svc.url);
        wait_healthy(&http, &health, &mut svc.child, &svc.name).await?;
        self.runners.push(svc);
        Ok(())
    }

    /// pipeline-svc's object store (`PIPELINE_OBJECT_STORE=file://…`): objects are at
    /// `sha256/<first 2 hex>/<sha256>` below it.
    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join(OBJECTS)
    }

    /// The Postgres postmaster's pid (the first line of `postmaster.pid`).
    pub fn postgres_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pg_dir.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops every runner (SIGTERM: they finish what they run and remove their containers).
    pub async fn stop_runners(&mut self) {
        for r in self.runners.drain(..) {
            r.stop(Duration::from_secs(30)).await;
        }
    }

    /// Prints where everything is (for `xtask stack`).
    pub fn describe(&self) {
        println!("work directory: {}", self.dir.display());
        println!(
            "pipeline-svc:   {} (pid {})",
            self.pipeline.url,
            self.pipeline.pid().unwrap_or(0)
        );
        println!(
            "api-gateway:    {} (pid {})",
            self.gateway.url,
            self.gateway.pid().unwrap_or(0)
        );
        for r in &self.runners {
            println!("{}: {} (pid {})", r.name, r.url, r.pid().unwrap_or(0));
        }
        println!("GW={}/api/v1", self.gateway.url);
    }

    /// Stops everything and removes Postgres; leaves the work directory (logs) in place.
    pub async fn shutdown(mut self) {
        self.stop_runners().await;
        self.gateway.stop(Duration::from_secs(10)).await;
        self.pipeline.stop(Duration::from_secs(10)).await;
        stop_postgres(&self.root, &self.pg_dir).await;
        remove_leftover_docker_objects().await;
    }
}

fn spawn(dir: &Path, name: &str, cmd: &mut Command, url: String) -> anyhow::Result<Service> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let err = log.try_clone()?;
    let child = cmd
        .env("LOG_FORMAT", "pretty")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name} (is target/release built?)"))?;
    Ok(Service {
        name: name.to_owned(),
        url,
        child,
    })
}

async fn stop_postgres(root: &Path, pg_dir: &Path) {
    let _ = Command::new(root.join("scripts/pg-throwaway.sh"))
        .arg("stop")
        .arg(pg_dir)
        .stdin(Stdio::null())
        .status()
        .await;
    let _ = std::fs::remove_dir_all(pg_dir);
}

/// Removes containers and volumes with the bench's prefix that a crash may have left.
pub async fn remove_leftover_docker_objects() {
    let filter = format!("name={CONTAINER_PREFIX}");
    let ids = crate::machine::command_output("docker", &["ps", "-aq", "--filter", &filter]).await;
    for id in ids.split_whitespace() {
        let _ = crate::machine::command_output("docker", &["rm", "-f", id]).await;
    }
    let vols =
        crate::machine::command_output("docker", &["volume", "ls", "-q", "--filter", &filter])
            .await;
    for v in vols.split_whitespace() {
        let _ = crate::machine::command_output("docker", &["volume", "rm", "-f", v]).await;
    }
}
