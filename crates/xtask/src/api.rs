//! A small client of the public API (through the gateway), with the waits the workloads need.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The public API at one base URL (`…/api/v1`).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A triggered run: its id and its jobs' ids in pipeline order.
#[derive(Debug, Clone)]
pub struct Triggered {
    /// Run id.
    pub run_id: String,
    /// Job ids.
    pub job_ids: Vec<String>,
}

async fn ok(resp: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: {status}: {body}")
}

impl Api {
    /// A client of `gateway_url/api/v1`.
    pub fn new(gateway_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            http,
            base: format!("{gateway_url}/api/v1"),
        })
    }

    /// Creates (or updates) a repo.
    pub async fn put_repo(&self, repo: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/repos/{repo}", self.base))
            .json(&json!({}))
            .send()
            .await?;
        ok(r, "PUT repo").await?;
        Ok(())
    }

    /// Creates or updates a repo with `settings` (`clone_url`, …).
    pub async fn put_repo_with(&self, repo: &str, settings: &Value) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/repos/{repo}", self.base))
            .json(settings)
            .send()
            .await?;
        ok(r, "PUT repo").await?;
        Ok(())
    }

    /// Stores a template and attaches it (alone) to a fresh repo of the same name.
    pub async fn setup_pipeline(&self, name: &str, yaml: &str) -> anyhow::Result<()> {
        self.put_template(name, yaml).await?;
        self.put_repo(name).await?;
        self.attach(name, name).await
    }

    /// Stores template `name` and attaches it to `repo` too (which already exists).
    pub async fn attach_another(&self, repo: &str, name: &str, yaml: &str) -> anyhow::Result<()> {
        self.put_template(name, yaml).await?;
        self.attach(repo, name).await
    }

    async fn put_template(&self, name: &str, yaml: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/templates/{name}", self.base))
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await?;
        ok(r, "PUT template").await?;
        Ok(())
    }

    async fn attach(&self, repo: &str, name: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/repos/{repo}/templates/{name}", self.base))
            .json(&json!({}))
            .send()
            .await?;
        ok(r, "attach template").await?;
        Ok(())
    }

    /// Stores a repo secret.
    pub async fn put_secret(&self, repo: &str, name: &str, value: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/repos/{repo}/secrets/{name}", self.base))
            .json(&json!({ "value": value }))
            .send()
            .await?;
        ok(r, "PUT secret").await?;
        Ok(())
    }

    /// Triggers a run of `repo`.
    pub async fn trigger(&self, repo: &str) -> anyhow::Result<Triggered> {
        self.trigger_with(repo, &json!({})).await
    }

    /// Triggers a run of `repo` with only these of its attached templates.
    pub async fn trigger_templates(
        &self,
        repo: &str,
        templates: &[&str],
    ) -> anyhow::Result<Triggered> {
        self.trigger_with(repo, &json!({ "templates": templates }))
            .await
    }

    async fn trigger_with(&self, repo: &str, body: &Value) -> anyhow::Result<Triggered> {
        let r = self
            .http
            .post(format!("{}/repos/{repo}/pipelines/run", self.base))
            .json(body)
            .send()
            .await?;
        let run: Value = ok(r, "trigger").await?.json().await?;
        let run_id = run["id"]
            .as_str()
            .context("the trigger answer has no run id")?
            .to_owned();
        let job_ids = run["jobs"]
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .filter_map(|j| j["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Triggered { run_id, job_ids })
    }

    /// `GET /pipelines/runs/{id}`.
    pub async fn run(&self, run_id: &str) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}/pipelines/runs/{run_id}", self.base))
            .send()
            .await?;
        Ok(ok(r, "GET run").await?.json().await?)
    }

    /// Follows the run's event stream until it ends (the run has ended), then reads the run
    /// and returns its status. This is how a client sees the end soonest: pushed, not polled.
    pub async fn wait_run(&self, run_id: &str, timeout: Duration) -> anyhow::Result<String> {
        let follow = async {
            let mut r = ok(
                self.http
                    .get(format!(
                        "{}/pipelines/runs/{run_id}/events?follow=true",
                        self.base
                    ))
                    .send()
                    .await?,
                "follow events",
            )
            .await?;
            while r.chunk().await?.is_some() {}
            let run = self.run(run_id).await?;
            anyhow::Ok(run["status"].as_str().unwrap_or("?").to_owned())
        };
        tokio::time::timeout(timeout, follow)
            .await
            .with_context(|| format!("run {run_id} did not end within {timeout:?}"))?
    }

    /// Waits for a run and fails unless it succeeded.
    pub async fn expect_success(&self, run_id: &str, timeout: Duration) -> anyhow::Result<()> {
        let status = self.wait_run(run_id, timeout).await?;
        if status != "success" {
            bail!("run {run_id} ended {status}, not success");
        }
        Ok(())
    }

    /// Opens `/jobs/{id}/logs/raw?follow=true` and returns when its first byte arrives
    /// (measured from `since`), then drains the stream to the end of the job.
    pub async fn first_log_byte(
        &self,
        job_id: &str,
        since: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let go = async {
            let mut r = ok(
                self.http
                    .get(format!("{}/jobs/{job_id}/logs/raw?follow=true", self.base))
                    .send()
                    .await?,
                "follow raw log",
            )
            .await?;
            let mut first = None;
            while let Some(chunk) = r.chunk().await? {
                if first.is_none() && !chunk.is_empty() {
                    first = Some(since.elapsed());
                }
            }
            first.context("the job's log stayed empty")
        };
        tokio::time::timeout(timeout, go)
            .await
            .with_context(|| format!("job {job_id}'s log did not end within {timeout:?}"))?
    }

    /// The whole stored log of a job (`/logs/raw`).
    pub async fn raw_log(&self, job_id: &str) -> anyhow::Result<Vec<u8>> {
        let r = self
            .http
            .get(format!("{}/jobs/{job_id}/logs/raw", self.base))
            .send()
            .await?;
        Ok(ok(r, "GET raw log").await?.bytes().await?.to_vec())
    }

    /// One page of a job's log: `(next_offset, complete, bytes of data)`.
    pub async fn log_page(
        &self,
        job_id: &str,
        offset: u64,
        limit: u64,
    ) -> anyhow::Result<(u64, bool, usize)> {
        let r = self
            .http
            .get(format!(
                "{}/jobs/{job_id}/logs?offset={offset}&limit={limit}",
                self.base
            ))
            .send()
            .await?;
        let page: Value = ok(r, "GET log page").await?.json().await?;
        let next = page["next_offset"].as_u64().context("no next_offset")?;
        let complete = page["complete"].as_bool().unwrap_or(false);
        let len = page["chunks"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| c["data"].as_str())
                    .map(str::len)
                    .sum()
            })
            .unwrap_or(0);
        Ok((next, complete, len))
    }
}
