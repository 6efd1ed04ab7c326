//! The real service binaries started as processes (for faults, restarts and what a service
//! writes to its own log), with loopback addresses, the test image's pull policy and a data
//! directory of the tests' own.

use crate::helpers::{Proc, bin};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where a process's output goes.
enum Output<'a> {
    /// stdout dropped, stderr to the test's.
    Inherit,
    /// stdout and stderr appended to this file.
    File(&'a Path),
}

impl Output<'_> {
    fn apply(&self, cmd: &mut Command) {
        match self {
            Output::Inherit => {
                cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
            }
            Output::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the process's log file");
                let err = file.try_clone().expect("clone the log file");
                cmd.stdout(file).stderr(err);
            }
        }
    }
}

/// runner-svc against `pipeline`, named `name`, its containers prefixed `prefix`.
pub fn runner_process(pipeline: &str, name: &str, prefix: &str) -> Proc {
    runner_process_with(pipeline, name, prefix, &[])
}

/// [`runner_process`] with extra environment (which wins over the defaults).
pub fn runner_process_with(pipeline: &str, name: &str, prefix: &str, env: &[(&str, &str)]) -> Proc {
    runner(None, pipeline, name, prefix, env, &Output::Inherit)
}

/// [`runner_process_with`] writing everything it logs to `log`.
pub fn runner_process_logged(
    pipeline: &str,
    name: &str,
    prefix: &str,
    env: &[(&str, &str)],
    log: &Path,
) -> Proc {
    runner(None, pipeline, name, prefix, env, &Output::File(log))
}

/// [`runner_process_logged`] inside network namespace `netns` (`ip netns exec`, which
/// replaces itself with runner-svc: the child is the runner).
pub fn runner_process_in(
    netns: &str,
    pipeline: &str,
    name: &str,
    prefix: &str,
    env: &[(&str, &str)],
    log: &Path,
) -> Proc {
    runner(Some(netns), pipeline, name, prefix, env, &Output::File(log))
}

fn runner(
    netns: Option<&str>,
    pipeline: &str,
    name: &str,
    prefix: &str,
    env: &[(&str, &str)],
    out: &Output,
) -> Proc {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin("runner-svc"));
            c
        }
        None => Command::new(bin("runner-svc")),
    };
    cmd.env("PIPELINE_SVC_URL", pipeline)
        .env("RUNNER_NAME", name)
        .env("RUNNER_CONTAINER_PREFIX", prefix)
        .env("RUNNER_PULL_POLICY", "never")
        .env("RUNNER_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env_remove("RUNNER_REGISTRATION_TOKEN")
        .envs(env.iter().copied());
    out.apply(&mut cmd);
    Proc(cmd.spawn().expect("start runner-svc"))
}

/// pipeline-svc on `127.0.0.1:port` against database `db`, registration open.
pub fn pipeline_process(db: &str, port: u16) -> Proc {
    pipeline_process_with(db, port, &[])
}

/// [`pipeline_process`] with extra environment (which wins over the defaults).
pub fn pipeline_process_with(db: &str, port: u16, env: &[(&str, &str)]) -> Proc {
    pipeline(db, port, env, &Output::Inherit)
}

/// [`pipeline_process_with`] writing everything it logs to `log`.
pub fn pipeline_process_logged(db: &str, port: u16, env: &[(&str, &str)], log: &Path) -> Proc {
    pipeline(db, port, env, &Output::File(log))
}

fn pipeline(db: &str, port: u16, env: &[(&str, &str)], out: &Output) -> Proc {
    let mut cmd = Command::new(bin("pipeline-svc"));
    cmd.env("DATABASE_URL", db)
        .env("PIPELINE_ADDR", format!("127.0.0.1:{port}"))
        .env("PIPELINE_INSECURE_OPEN_REGISTRATION", "true")
        // The secrets key file of the test processes, not the host's /var/lib/gitweave.
        .env(
            "PIPELINE_DATA_DIR",
            std::env::temp_dir().join("gitweave-pipeline-data"),
        )
        .env("RUNNER_LOCAL_REPO_ROOT", std::env::temp_dir())
        .env("RUST_LOG", "warn")
        .env_remove("RUNNER_REGISTRATION_TOKEN")
        .env_remove("RUNNER_REGISTRATION_TOKEN_FILE")
        .envs(env.iter().copied());
    out.apply(&mut cmd);
    Proc(cmd.spawn().expect("start pipeline-svc"))
}

/// api-gateway on `127.0.0.1:port` in front of `pipeline`, writing everything it logs to `log`.
pub fn gateway_process_logged(pipeline: &str, port: u16, env: &[(&str, &str)], log: &Path) -> Proc {
    let mut cmd = Command::new(bin("api-gateway"));
    cmd.env("PIPELINE_SVC_URL", pipeline)
        .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env_remove("GITWEAVE_API_TOKEN")
        .envs(env.iter().copied());
    Output::File(log).apply(&mut cmd);
    Proc(cmd.spawn().expect("start api-gateway"))
}

/// Waits (at most 10 s) until `url/readyz` answers 2xx.
pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

/// The public API of services started as processes (no [`crate::helpers::TestApp`]): set up a
/// repo with one template, run it to its end, read what a job kept.
pub struct ProcApi {
    /// `http://…/api/v1` (the gateway's or pipeline-svc's).
    pub api: String,
    /// A plain client.
    pub http: reqwest::Client,
}

impl ProcApi {
    /// The API under `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        ProcApi {
            api: format!("{base}/api/v1"),
            http: reqwest::Client::new(),
        }
    }

    /// Repo `repo` with template `repo` (`yaml`) attached.
    pub async fn setup(&self, repo: &str, yaml: &str) {
        let api = &self.api;
        let r = self
            .http
            .put(format!("{api}/repos/{repo}"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("repo");
        assert!(r.status().is_success(), "repo: {}", r.status());
        let r = self
            .http
            .put(format!("{api}/templates/{repo}"))
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .expect("template");
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
        let r = self
            .http
            .put(format!("{api}/repos/{repo}/templates/{repo}"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("attach");
        assert!(r.status().is_success(), "attach: {}", r.status());
    }

    /// Triggers a run of `repo` and waits (at most `limit`) for its end.
    pub async fn run(&self, repo: &str, limit: Duration) -> gitweave_api::public::Run {
        let run = self.trigger(repo).await;
        self.wait_end(run.id, limit).await
    }

    /// Triggers a run of `repo` (an empty body) and returns the `201` answer.
    pub async fn trigger(&self, repo: &str) -> gitweave_api::public::Run {
        let r = self
            .http
            .post(format!("{}/repos/{repo}/pipelines/run", self.api))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("trigger");
        assert_eq!(r.status(), reqwest::StatusCode::CREATED, "trigger");
        r.json().await.expect("run")
    }

    /// `GET` of `path` under the API, as JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not the JSON expected: {e}"))
    }

    /// The run as stored now.
    pub async fn get_run(&self, id: uuid::Uuid) -> gitweave_api::public::Run {
        self.get_json(&format!("/pipelines/runs/{id}")).await
    }

    /// Waits (at most `limit`) for run `id` to end; a request that fails (the service being
    /// restarted) is tried again.
    pub async fn wait_end(&self, id: uuid::Uuid, limit: Duration) -> gitweave_api::public::Run {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self
                .http
                .get(format!("{}/pipelines/runs/{id}", self.api))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if let Ok(r) = got
                && r.status().is_success()
                && let Ok(run) = r.json::<gitweave_api::public::Run>().await
                && run.status.is_terminal()
            {
                return run;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {id} did not end within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A run's events, in order.
    pub async fn events(&self, run: uuid::Uuid) -> Vec<gitweave_api::public::Event> {
        let text = self
            .http
            .get(format!("{}/pipelines/runs/{run}/events", self.api))
            .send()
            .await
            .expect("events")
            .text()
            .await
            .expect("events text");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("event JSON"))
            .collect()
    }

    /// `GET /runners`.
    pub async fn runners(&self) -> gitweave_api::public::RunnerList {
        self.get_json("/runners").await
    }

    /// The files a job kept.
    pub async fn artifacts(&self, job: uuid::Uuid) -> gitweave_api::public::ArtifactList {
        self.get_json(&format!("/jobs/{job}/artifacts")).await
    }

    /// A job's whole log.
    pub async fn log(&self, job: uuid::Uuid) -> String {
        self.http
            .get(format!("{}/jobs/{job}/logs/raw", self.api))
            .send()
            .await
            .expect("log")
            .text()
            .await
            .expect("log text")
    }
}
