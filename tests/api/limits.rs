//! No input takes pipeline-svc down: alias bombs, inputs substituted thousands of times,
//! oversized inputs, too many jobs or attachments are refused with 422 `limit_exceeded`, the
//! service keeps serving, and its peak memory stays under 256 MiB. pipeline-svc runs as the
//! real binary, so its `VmHWM` can be read from `/proc`.

use crate::helpers::{Proc, bin, envelope, free_port, fresh_database};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Peak resident memory pipeline-svc may reach under every attack here.
const PEAK_RSS_LIMIT_KIB: u64 = 256 * 1024;

impl Proc {
    /// `VmHWM` (peak resident set) in KiB, from `/proc/<pid>/status`.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("pipeline-svc is still running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    fn assert_alive(&mut self) {
        assert!(
            matches!(self.0.try_wait(), Ok(None)),
            "pipeline-svc died: {:?}",
            self.0.try_wait()
        );
    }
}

struct Svc {
    proc: Proc,
    api: String,
    http: reqwest::Client,
}

impl Svc {
    async fn start() -> Self {
        let db = fresh_database().await;
        let port = free_port();
        let proc = Proc(
            Command::new(bin("pipeline-svc"))
                .env("DATABASE_URL", db)
                .env("PIPELINE_ADDR", format!("127.0.0.1:{port}"))
                .env("RUST_LOG", "warn")
                // The secrets key file of the test processes, not the host's /var/lib/gitweave.
                .env(
                    "PIPELINE_DATA_DIR",
                    std::env::temp_dir().join("gitweave-pipeline-data"),
                )
                .env_remove("RUNNER_REGISTRATION_TOKEN")
                .env_remove("PIPELINE_RETENTION_DAYS")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start pipeline-svc"),
        );
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{url}/readyz")).send().await
                && r.status().is_success()
            {
                return Svc {
                    proc,
                    api: format!("{url}/api/v1"),
                    http,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pipeline-svc never became ready");
    }

    async fn put_template(&self, name: &str, yaml: String) -> reqwest::Response {
        self.http
            .put(format!("{}/templates/{name}", self.api))
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await
            .expect("PUT template")
    }

    async fn put_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .put(format!("{}{path}", self.api))
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    async fn trigger(&self, repo: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/repos/{repo}/pipelines/run", self.api))
            .json(body)
            .send()
            .await
            .expect("trigger")
    }

    async fn template_ok(&self, name: &str, yaml: String) {
        let r = self.put_template(name, yaml).await;
        let status = r.status();
        assert!(
            status.is_success(),
            "template {name}: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }

    async fn attach_ok(&self, repo: &str, template: &str) {
        let r = self
            .put_json(&format!("/repos/{repo}/templates/{template}"), &json!({}))
            .await;
        assert!(r.status().is_success(), "attach {template}: {}", r.status());
    }
}

/// A refusal for a size cap: 422 `limit_exceeded` whose message names the limit.
async fn assert_limit(r: reqwest::Response, limit: &str, what: &str) {
    let (status, code, message) = envelope(r).await;
    assert_eq!(
        (status, code.as_str()),
        (422, "limit_exceeded"),
        "{what}: {message}"
    );
    assert!(
        message.contains(&format!("(limit {limit}: ")),
        "{what}: the message names the limit and its value: {message}"
    );
}

fn jobs_yaml(n: usize) -> String {
    let mut s = String::from("jobs:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - {{name: j{i}, image: busybox, script: [x]}}\n"
        ));
    }
    s
}

#[tokio::test]
async fn attacks_on_templates_and_inputs_are_refused_and_pipeline_svc_stays_small() {
    let mut svc = Svc::start().await;
    assert_eq!(svc.put_json("/repos/r", &json!({})).await.status(), 201);

    // The classic billion laughs, nested ten deep.
    let mut laughs = String::from(
        "jobs:\n  - name: j\n    image: busybox\n    script: [x]\n    env:\n      L0: &l0 \"lol\"\n",
    );
    laughs.push_str("      L1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]\n");
    for i in 2..10 {
        let p = i - 1;
        laughs.push_str(&format!(
            "      L{i}: &l{i} [*l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}, *l{p}]\n"
        ));
    }
    let (status, _, _) = envelope(svc.put_template("laughs", laughs).await).await;
    assert_eq!(status, 422, "billion laughs");

    // A 401 KB template: one 1 KiB scalar aliased 130,000 times (130 MB once expanded).
    let wide = format!(
        "inputs: {{x: {{description: &a \"{}\"}}}}\njobs: [{{name: j, image: busybox, script: [{}x]}}]\n",
        "l".repeat(1024),
        "*a, ".repeat(100_000)
    );
    assert!(
        wide.len() > 400_000 && wide.len() < 512 * 1024,
        "{}",
        wide.len()
    );
    assert_limit(
        svc.put_template("wide", wide).await,
        "yaml_scalar_bytes",
        "alias bomb",
    )
    .await;
    svc.proc.assert_alive();

    // A 320 KB template that substitutes one input 16,000 times: accepted, but a trigger
    // with a 50 KB input would expand to 800 MB.
    let lines: String = (0..16_000)
        .map(|_| "      - \"${{ inputs.x }}\"\n")
        .collect();
    let repeat = format!(
        "inputs: {{x: {{default: small}}}}\njobs:\n  - name: j\n    image: busybox\n    script:\n{lines}"
    );
    assert!(repeat.len() > 320_000, "{}", repeat.len());
    svc.template_ok("repeat", repeat).await;
    svc.attach_ok("r", "repeat").await;
    assert_limit(
        svc.trigger("r", &json!({"inputs": {"x": "y".repeat(50_000)}}))
            .await,
        "job_expanded_bytes",
        "input repeated",
    )
    .await;
    svc.proc.assert_alive();

    // Input values: 64 KiB each, in a trigger, an attachment or a template default.
    assert_limit(
        svc.trigger("r", &json!({"inputs": {"x": "y".repeat(64 * 1024 + 1)}}))
            .await,
        "input_value_bytes",
        "trigger input",
    )
    .await;
    assert_limit(
        svc.put_json(
            "/repos/r/templates/repeat",
            &json!({"inputs": {"x": "y".repeat(64 * 1024 + 1)}}),
        )
        .await,
        "input_value_bytes",
        "attachment input",
    )
    .await;
    assert_limit(
        svc.put_template(
            "big-default",
            format!(
                "inputs: {{x: {{default: {}}}}}\n{}",
                "d".repeat(64 * 1024 + 1),
                jobs_yaml(1)
            ),
        )
        .await,
        "input_value_bytes",
        "template default",
    )
    .await;
    // … and at most 100 of them.
    let many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("i{i}"), json!("v"))).collect();
    assert_limit(
        svc.trigger("r", &json!({"inputs": many})).await,
        "inputs",
        "101 trigger inputs",
    )
    .await;

    // 1,001 jobs in one run: two full templates and one more job.
    assert_eq!(svc.put_json("/repos/big", &json!({})).await.status(), 201);
    for (name, n) in [("five-a", 500), ("five-b", 500), ("one", 1)] {
        svc.template_ok(name, jobs_yaml(n)).await;
        svc.attach_ok("big", name).await;
    }
    assert_limit(
        svc.trigger("big", &json!({})).await,
        "run_jobs",
        "1,001 jobs",
    )
    .await;

    // 100 templates per repo.
    assert_eq!(svc.put_json("/repos/many", &json!({})).await.status(), 201);
    svc.template_ok("t", jobs_yaml(1)).await;
    for i in 0..100 {
        svc.template_ok(&format!("t{i}"), jobs_yaml(1)).await;
        svc.attach_ok("many", &format!("t{i}")).await;
    }
    assert_limit(
        svc.put_json("/repos/many/templates/t", &json!({})).await,
        "attached_templates",
        "101st attachment",
    )
    .await;
    // Re-attaching one already attached (new default inputs) is still fine.
    svc.attach_ok("many", "t7").await;

    // Still serving, and an ordinary run is still made.
    svc.proc.assert_alive();
    let r = svc.trigger("r", &json!({"inputs": {"x": "ok"}})).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let r = svc
        .http
        .get(svc.api.replace("/api/v1", "/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(r.status().is_success());

    let peak = svc.proc.peak_rss_kib();
    eprintln!("pipeline-svc peak RSS: {peak} KiB");
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "pipeline-svc's peak RSS was {peak} KiB, more than {PEAK_RSS_LIMIT_KIB} KiB"
    );
}
