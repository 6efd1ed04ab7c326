//! `spawn_app()`: the three real services in-process on port 0, against a fresh Postgres
//! database and the real Docker engine, with typed request helpers.
//!
//! Needs `DATABASE_URL` (an admin connection; each test creates its own database) and a Docker
//! engine. The job image is `GITWEAVE_TEST_IMAGE` (default `gitweave-busybox:latest`, made by
//! `scripts/local-images.sh job`). Every container and volume a test's runner makes carries
//! that runner's unique name and prefix, and is removed when the test ends, pass or fail.

use gitweave_api::public::{LogsPage, Run};
use gitweave_model::status::RunStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use runner_svc::config::EngineKind;

/// The job image used by tests.
pub fn image() -> String {
    std::env::var("GITWEAVE_TEST_IMAGE").unwrap_or_else(|_| "gitweave-busybox:latest".into())
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL must point at a Postgres the tests may create databases in (scripts/test does this)")
    })
}

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start a runner with this engine (none: drive the runner protocol by hand).
    pub runner: Option<EngineKind>,
    /// Runner slots.
    pub concurrency: u32,
    /// How many runner instances.
    pub runners: u32,
    /// pipeline-svc's lease length.
    pub lease_ms: u64,
    /// pipeline-svc's reaper period.
    pub reaper_interval_ms: u64,
    /// `GITWEAVE_API_TOKEN` for the gateway.
    pub api_token: Option<String>,
    /// `RUNNER_REGISTRATION_TOKEN` for pipeline-svc and the runner.
    pub registration_token: Option<String>,
    /// The gateway's `GATEWAY_RATE_LIMIT` and `GATEWAY_RATE_BURST` (default: the gateway's).
    pub rate_limit: Option<(u32, u32)>,
    /// The runner's `RUNNER_JOB_MEMORY` (e.g. `"32m"`; default: no limit).
    pub job_memory: Option<&'static str>,
    /// The runner's `RUNNER_JOB_EGRESS`.
    pub job_egress: bool,
    /// The runner's `RUNNER_JOB_NETWORK` (`"run"` or `"job"`; default `run`).
    pub job_network: Option<&'static str>,
    /// The runner's `RUNNER_LOG_LIMIT` (default: the runner's).
    pub log_limit: Option<u64>,
    /// `RUNNER_LOCAL_REPO_ROOT` of pipeline-svc and the runner (default: the system's temp dir, where tests make
    /// their repositories).
    pub local_repo_root: Option<std::path::PathBuf>,
    /// pipeline-svc's `PIPELINE_RETENTION_DAYS` and `PIPELINE_RETENTION_INTERVAL_S`
    /// (default: keep forever).
    pub retention: Option<(u32, u64)>,
    /// pipeline-svc's `PIPELINE_INSECURE_OPEN_REGISTRATION` (default true, so runners without
    /// a `registration_token` register; it has no effect when that token is set).
    pub insecure_open_registration: bool,
    /// Any other change to the gateway's configuration (timeouts, connection caps), applied
    /// last.
    pub gateway: Option<fn(&mut api_gateway::Config)>,
    /// Any other change to pipeline-svc's configuration (e.g. the SSE keep-alive), applied
    /// last.
    pub pipeline: Option<fn(&mut pipeline_svc::Config)>,
    /// The runner's `RUNNER_WORKSPACE_SWEEP_INTERVAL` (default: the runner's).
    pub workspace_sweep: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runner: Some(EngineKind::Docker),
            concurrency: 1,
            runners: 1,
            lease_ms: 30_000,
            reaper_interval_ms: 5_000,
            api_token: None,
            registration_token: None,
            rate_limit: None,
            job_memory: None,
            job_egress: false,
            job_network: None,
            log_limit: None,
            local_repo_root: Some(std::env::temp_dir()),
            retention: None,
            insecure_open_registration: true,
            gateway: None,
            pipeline: None,
            workspace_sweep: None,
        }
    }
}

/// A running stack.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway: String,
    /// `http://127.0.0.1:PORT` of pipeline-svc.
    pub pipeline: String,
    /// `http://127.0.0.1:PORT` of the runner's health listener, if a runner runs.
    pub runner_health: Option<String>,
    /// A plain client.
    pub http: reqwest::Client,
    /// The runner's unique name (its containers are labelled with it).
    pub runner_name: String,
    /// Prefix of the runner's containers and volumes.
    pub prefix: String,
    /// `Authorization` to send to the gateway.
    pub token: Option<String>,
    /// The test's database (for what the API does not show, e.g. a job's stored `reason`).
    pub db_url: String,
    stops: Vec<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    _cleanup: Cleanup,
}

/// Removes the test's containers and volumes even when the test panics.
struct Cleanup {
    runner_name: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=gitweave.runner={}", self.runner_name),
            ])
            .output();
        if let Ok(out) = ids {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .output();
            }
        }
        // Run networks (RUNNER_JOB_EGRESS), once no container is on them.
        let nets = std::process::Command::new("docker")
            .args([
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("name={}", self.prefix),
            ])
            .output();
        if let Ok(out) = nets {
            let nets: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !nets.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["network", "rm"])
                    .args(&nets)
                    .output();
            }
        }
        let vols = std::process::Command::new("docker")
            .args([
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("name={}", self.prefix),
            ])
            .output();
        if let Ok(out) = vols {
            let vols: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !vols.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["volume", "rm", "-f"])
                    .args(&vols)
                    .output();
            }
        }
    }
}

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!("gw_test_{}", Uuid::new_v4().simple());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("connect to the admin database");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create the test database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{base}/{name}")
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        gitweave_http::init_telemetry(gitweave_http::LogFormat::Pretty);
    }
}

/// A workspace binary (`runner-svc`, `pipeline-svc`, …), built by `cargo build --bins` (which
/// `scripts/test` runs first). `GITWEAVE_BIN_DIR` overrides where to look.
pub fn bin(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("GITWEAVE_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            // target/debug/deps/api-<hash> → target/debug
            let exe = std::env::current_exe().expect("test binary path");
            exe.parent()
                .and_then(|p| p.parent())
                .expect("target dir")
                .to_path_buf()
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --bins` (scripts/test does)",
        path.display()
    );
    path
}

/// The ids of every container, running or not, that carries all of `labels` (`key=value`).
pub fn containers_labelled(labels: &[String]) -> Vec<String> {
    let filters: Vec<String> = labels.iter().map(|l| format!("label={l}")).collect();
    containers_matching(&filters)
}

/// The ids of every container, running or not, that passes all of `filters` (`docker ps
/// --filter`, e.g. `label=k=v`, `status=exited`).
pub fn containers_matching(filters: &[String]) -> Vec<String> {
    let mut args = vec!["ps".to_owned(), "-aq".to_owned()];
    for f in filters {
        args.extend(["--filter".to_owned(), f.clone()]);
    }
    let out = std::process::Command::new("docker")
        .args(&args)
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The containers of `job`: any attempt, any runner.
pub fn containers_of_job(job: Uuid) -> Vec<String> {
    containers_labelled(&[format!("gitweave.job={job}")])
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Options for a stack without a runner (runs stay queued; the runner protocol can be driven
/// by hand).
/// pipeline-svc with `PIPELINE_REPO_FILE=false`: only attached templates run and no repo's
/// git server is read at trigger time (for tests of the runner's own checkout, whose clone
/// URLs are unreachable, hostile or not repositories on purpose).
pub fn no_repo_file(c: &mut pipeline_svc::Config) {
    c.repo_file = false;
}

pub fn no_runner() -> Options {
    Options {
        runner: None,
        ..Options::default()
    }
}

/// The job of `run` named `name`: its whole `<template>/<job>` name, or its name in its
/// template.
pub fn job_named<'a>(run: &'a Run, name: &str) -> &'a gitweave_api::public::Job {
    run.jobs
        .iter()
        .find(|j| j.name == name || j.name.ends_with(&format!("/{name}")))
        .unwrap_or_else(|| panic!("no job {name} in {run:#?}"))
}

/// An error response's status, `code` and `message`.
pub async fn envelope(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("error envelope is JSON");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Starts the stack with default options (a docker runner).
pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// Starts the stack.
pub async fn spawn_with(opts: Options) -> TestApp {
    spawn_on(fresh_database().await, opts).await
}

/// Starts the stack on a given database.
pub async fn spawn_on(db_url: String, opts: Options) -> TestApp {
    init_logs();
    let mut stops = Vec::new();

    let mut pconfig = pipeline_svc::Config::for_database(db_url.clone());
    pconfig.runner_registration_token = opts.registration_token.clone();
    // pipeline-svc asks for the gateway's token itself (SPEC §15).
    pconfig.api_token = opts.api_token.clone();
    pconfig.insecure_open_registration = opts.insecure_open_registration;
    pconfig.local_repo_root = opts.local_repo_root.clone();
    pconfig.retry_base_ms = 100;
    pconfig.lease_ms = opts.lease_ms;
    pconfig.reaper_interval_ms = opts.reaper_interval_ms;
    if let Some((days, interval_s)) = opts.retention {
        pconfig.retention_days = Some(days);
        pconfig.retention_interval_s = interval_s;
    }
    if let Some(change) = opts.pipeline {
        change(&mut pconfig);
    }
    let papp = pipeline_svc::App::build(pconfig)
        .await
        .expect("build pipeline-svc");
    let pipeline = format!("http://{}", papp.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel();
    stops.push((
        tx,
        tokio::spawn(papp.run_until_stopped(async {
            let _ = rx.await;
        })),
    ));

    let short = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let runner_name = format!("test-runner-{short}");
    let prefix = format!("gwt{short}-");
    let mut runner_health = None;
    for n in 0..opts.runners {
        let Some(engine) = opts.runner else { break };
        let mut rconfig = runner_svc::Config::for_pipeline(&pipeline, engine);
        // Every instance's containers carry the test's runner name as a prefix of their own.
        rconfig.name = Some(if n == 0 {
            runner_name.clone()
        } else {
            format!("{runner_name}-{n}")
        });
        rconfig.container_prefix = prefix.clone();
        rconfig.concurrency = opts.concurrency;
        rconfig.registration_token = opts.registration_token.clone();
        rconfig.workdir = std::env::temp_dir().join(format!("gitweave-test-{short}"));
        rconfig.job_memory = opts
            .job_memory
            .map(|m| m.parse().expect("RUNNER_JOB_MEMORY of the test"));
        rconfig.job_egress = opts.job_egress;
        if let Some(network) = opts.job_network {
            rconfig.job_network = network.parse().expect("RUNNER_JOB_NETWORK of the test");
        }
        if let Some(limit) = opts.log_limit {
            rconfig.log_limit = limit;
        }
        rconfig.local_repo_root = opts.local_repo_root.clone();
        if let Some(interval) = opts.workspace_sweep {
            rconfig.workspace_sweep_interval = interval;
        }
        let rapp = runner_svc::App::build(rconfig)
            .await
            .expect("build runner-svc");
        if n == 0 {
            runner_health = Some(format!("http://{}", rapp.local_addr().expect("addr")));
        }
        let (tx, rx) = oneshot::channel();
        stops.push((
            tx,
            tokio::spawn(rapp.run_until_stopped(async {
                let _ = rx.await;
            })),
        ));
    }

    let mut gconfig = api_gateway::Config::for_pipeline(&pipeline);
    gconfig.api_token = opts.api_token.clone();
    if let Some((rate, burst)) = opts.rate_limit {
        (gconfig.rate_limit, gconfig.rate_burst) = (rate, burst);
    }
    if let Some(change) = opts.gateway {
        change(&mut gconfig);
    }
    let gapp = api_gateway::App::build(gconfig)
        .await
        .expect("build api-gateway");
    let gateway = format!("http://{}", gapp.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel();
    stops.push((
        tx,
        tokio::spawn(gapp.run_until_stopped(async {
            let _ = rx.await;
        })),
    ));

    TestApp {
        gateway,
        pipeline,
        runner_health,
        http: reqwest::Client::new(),
        _cleanup: Cleanup {
            runner_name: runner_name.clone(),
            prefix: prefix.clone(),
        },
        runner_name,
        prefix,
        token: opts.api_token,
        db_url,
        stops,
    }
}

impl TestApp {
    /// The pipeline-svc URL the stack uses (for runners started as processes).
    pub fn pipeline_url(&self) -> &str {
        &self.pipeline
    }

    /// `{gateway}/api/v1{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.gateway)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// GET a gateway path outside `/api/v1` (`/healthz`, `/metrics`), without the token.
    pub async fn gateway_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.gateway))
            .send()
            .await
            .expect("GET")
    }

    /// GET through the gateway under `/api/v1`, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("json")
    }

    /// GET through the gateway under `/api/v1`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.auth(self.http.get(self.api(path)))
            .send()
            .await
            .expect("GET")
    }

    /// PUT JSON through the gateway.
    pub async fn put_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.auth(self.http.put(self.api(path)))
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    /// POST JSON through the gateway.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.auth(self.http.post(self.api(path)))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.auth(self.http.request(method, self.api(path)))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates a repo.
    pub async fn create_repo(&self, name: &str) {
        let r = self.put_json(&format!("/repos/{name}"), &json!({})).await;
        assert_eq!(r.status(), StatusCode::CREATED, "create repo {name}");
    }

    /// Uploads a template.
    pub async fn put_template(&self, name: &str, yaml: &str) -> reqwest::Response {
        self.send_raw(
            reqwest::Method::PUT,
            &format!("/templates/{name}"),
            "application/yaml",
            yaml.to_owned(),
        )
        .await
    }

    /// Uploads a template that must be accepted.
    pub async fn template_ok(&self, name: &str, yaml: &str) {
        let r = self.put_template(name, yaml).await;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "template {name} refused: {status} {body}"
        );
    }

    /// Attaches a template to a repo.
    pub async fn attach(&self, repo: &str, template: &str) {
        let r = self
            .put_json(&format!("/repos/{repo}/templates/{template}"), &json!({}))
            .await;
        assert!(
            r.status().is_success(),
            "attach {template} to {repo}: {}",
            r.status()
        );
    }

    /// Repo + template + attachment in one go.
    pub async fn repo_with(&self, repo: &str, template: &str, yaml: &str) {
        self.create_repo(repo).await;
        self.template_ok(template, yaml).await;
        self.attach(repo, template).await;
    }

    /// Triggers a run that must be created.
    pub async fn trigger(&self, repo: &str, body: &Value) -> Run {
        let r = self
            .post_json(&format!("/repos/{repo}/pipelines/run"), body)
            .await;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::CREATED, "trigger: {text}");
        serde_json::from_str(&text).expect("run JSON")
    }

    /// Fetches a run.
    pub async fn run(&self, id: Uuid) -> Run {
        let r = self.get(&format!("/pipelines/runs/{id}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("run JSON")
    }

    /// Polls the run until its status is `status` (every 50 ms, at most `limit`).
    pub async fn wait_status(&self, id: Uuid, status: RunStatus, limit: Duration) -> Run {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let run = self.run(id).await;
            if run.status == status {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} never became {status:?}: {run:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls a run until it ends (at most `limit`).
    pub async fn wait_run(&self, id: Uuid, limit: Duration) -> Run {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let run = self.run(id).await;
            if run.status.is_terminal() {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} did not end within {limit:?}: {run:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One logs page.
    pub async fn logs_page(&self, job: Uuid, offset: i64, limit: i64) -> LogsPage {
        let r = self
            .get(&format!("/jobs/{job}/logs?offset={offset}&limit={limit}"))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("logs JSON")
    }

    /// The whole log, reassembled through pagination: (text, pages).
    pub async fn paged_log(&self, job: Uuid, limit: i64) -> (String, usize) {
        let mut text = String::new();
        let mut offset = 0;
        let mut pages = 0;
        loop {
            let page = self.logs_page(job, offset, limit).await;
            pages += 1;
            let mut at = offset;
            for c in &page.chunks {
                assert_eq!(
                    c.offset, at,
                    "chunks are contiguous from the requested offset"
                );
                at += c.data.len() as i64;
                text.push_str(&c.data);
            }
            assert!(page.next_offset >= offset, "offsets never go back");
            if page.complete {
                return (text, pages);
            }
            assert!(page.next_offset > offset || page.chunks.is_empty());
            offset = page.next_offset;
            assert!(pages < 100_000, "pagination does not end");
        }
    }

    /// The raw log bytes.
    pub async fn raw_log(&self, job: Uuid) -> Vec<u8> {
        let r = self.get(&format!("/jobs/{job}/logs/raw")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.expect("raw body").to_vec()
    }

    /// A run's events (JSON lines).
    pub async fn events(&self, run: Uuid) -> Vec<gitweave_api::public::Event> {
        let r = self.get(&format!("/pipelines/runs/{run}/events")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let text = r.text().await.expect("events");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("event JSON"))
            .collect()
    }

    /// Checks that replaying a run's events gives its whole stored state: the run's status and
    /// timestamps, and each job's status, attempt, exit code, error class, stored reason and
    /// timestamps.
    pub async fn assert_replays(&self, run: Uuid) {
        let stored = self.run(run).await;
        let events = self.events(run).await;
        let replayed = gitweave_api::replay::replay(&events).expect("events replay");
        assert_eq!(replayed.status, stored.status, "run status from events");
        assert_eq!(
            (replayed.created_at, replayed.started_at, replayed.ended_at),
            (Some(stored.created_at), stored.started_at, stored.ended_at),
            "run created/started/ended from events"
        );
        assert_eq!(replayed.jobs.len(), stored.jobs.len());
        let reasons = self.stored_reasons(run).await;
        for j in &stored.jobs {
            let r = replayed.jobs.get(&j.id).expect("every job has events");
            assert_eq!(
                (r.status, r.attempt, r.exit_code, r.error_class),
                (j.status, j.attempt, j.exit_code, j.error_class),
                "job {} (status, attempt, exit code, error class) from events",
                j.name
            );
            assert_eq!(
                (r.started_at, r.ended_at),
                (j.started_at, j.ended_at),
                "job {} started/ended from events",
                j.name
            );
            assert_eq!(
                r.reason.as_ref(),
                reasons.get(&j.id).and_then(Option::as_ref),
                "job {} reason from events",
                j.name
            );
        }
    }

    /// Each job's stored `reason` (not part of the public job view).
    pub async fn stored_reasons(
        &self,
        run: Uuid,
    ) -> std::collections::HashMap<Uuid, Option<String>> {
        use sqlx::Connection as _;
        let mut db = sqlx::PgConnection::connect(&self.db_url)
            .await
            .expect("connect to the test database");
        let rows: Vec<(Uuid, Option<String>)> =
            sqlx::query_as("SELECT id, reason FROM jobs WHERE run_id = $1")
                .bind(run)
                .fetch_all(&mut db)
                .await
                .expect("jobs' reasons");
        rows.into_iter().collect()
    }

    /// Waits until this test's runner has removed its containers and workspace volumes (it
    /// removes them just after reporting a job's end, in the background), at most 20 s, and
    /// returns whatever is still there.
    pub async fn settled_containers(&self) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = self.leftover_containers();
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Job and checkout containers of this test's runner that still exist (network sandboxes
    /// live as long as the runner, see [`TestApp::sandboxes`]).
    pub fn leftover_containers(&self) -> Vec<String> {
        self.containers(&["gitweave.job"])
    }

    /// The network sandboxes of this test's runner.
    pub fn sandboxes(&self) -> Vec<String> {
        self.containers(&["gitweave.sandbox"])
    }

    /// Every container of this test's runner, whatever it is.
    pub fn all_containers_of_runner(&self) -> Vec<String> {
        self.containers(&[])
    }

    /// The runner's containers still listed `limit` after a stop that removed them (Docker
    /// may list a container being removed for a moment on a loaded machine), each described
    /// by name, status and labels, so a failure says what was left.
    pub async fn containers_left_within(&self, limit: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = self.all_containers_of_runner();
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                return left
                    .iter()
                    .map(|id| {
                        let out = std::process::Command::new("docker")
                            .args([
                                "ps",
                                "-a",
                                "--filter",
                                &format!("id={id}"),
                                "--format",
                                "{{.Names}} {{.Status}} {{.Labels}}",
                            ])
                            .output()
                            .expect("docker ps");
                        String::from_utf8_lossy(&out.stdout).trim().to_owned()
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn containers(&self, labels: &[&str]) -> Vec<String> {
        let mut all = vec![format!("gitweave.runner={}", self.runner_name)];
        all.extend(labels.iter().map(|l| (*l).to_owned()));
        containers_labelled(&all)
    }

    /// Stops every service (runner first, so it can report what it runs) and waits for them.
    pub async fn shutdown(mut self) {
        let stops: Vec<_> = self.stops.drain(..).collect();
        // Order: gateway, runner, pipeline-svc — the reverse of start, minus the gateway first
        // so no new request arrives.
        for (tx, handle) in stops.into_iter().rev() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
        }
        // A runner that has stopped leaves no container behind: no job, no checkout, no
        // network sandbox (not even one its warm pool was still creating).
        let left = self.all_containers_of_runner();
        assert!(
            left.is_empty(),
            "containers left after the runner stopped: {left:?}"
        );
    }
}

/// A service started as a real process (fault tests, the runner's own environment, peak
/// memory). Dropped, it gets SIGTERM, so a service still running at the end of a test cleans
/// up after itself (a runner removes its network sandboxes), then SIGKILL if it is not gone
/// within 15 s.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while matches!(self.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGTERM, then waits (at most 15 s) for the exit without blocking the test's runtime,
    /// which may be serving the in-process pipeline-svc that a stopping runner reports to.
    pub async fn terminate(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while matches!(self.0.try_wait(), Ok(None)) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            matches!(self.0.try_wait(), Ok(Some(_))),
            "the process did not stop within 15 s of SIGTERM"
        );
    }
}
