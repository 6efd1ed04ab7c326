//! `/metrics` after a known run: the names and values each service reports (what happened),
//! not only that the endpoint answers in the Prometheus format.

use crate::helpers::{TestApp, image, spawn_app};
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// `name{labels}` (or `name`) → value, from a Prometheus text page; checks that every sample
/// has its `# TYPE` line before it (a histogram's, for its `_bucket`, `_sum` and `_count`).
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut typed = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap_or_default().to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("`name value`");
        let name = key.split('{').next().unwrap_or_default();
        // A histogram's samples are `<name>_bucket`, `_sum` and `_count` of its TYPE's name.
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| typed.iter().any(|t| t == b));
        assert!(
            typed.iter().any(|t| t == name) || base.is_some(),
            "{name} has no # TYPE line before it:\n{text}"
        );
        let value: f64 = value.parse().expect("a number");
        samples.insert(key.to_owned(), value);
    }
    samples
}

/// `base/metrics` as text.
async fn page(app: &TestApp, base: &str) -> String {
    app.http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

async fn scrape(app: &TestApp, base: &str) -> BTreeMap<String, f64> {
    parse(&page(app, base).await)
}

/// Scrapes `base` until it reports every `expected` sample with its value (counters are
/// bumped just after the answer that the test waited for), at most 10 s.
async fn assert_eventually(app: &TestApp, base: &str, expected: &[(&str, f64)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = scrape(app, base).await;
        let wrong: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: expected {v}, got {:?}", got.get(*k)))
            .collect();
        if wrong.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base}/metrics:\n{}\nall samples: {got:#?}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_count_the_runs_attempts_and_log_bytes_of_a_known_run() {
    let app = spawn_app().await;
    let img = image();
    // One job succeeds; the other fails twice (one retry), which `allow_failure` tolerates.
    app.repo_with(
        "r",
        "known",
        &format!(
            "jobs:\n  - {{ name: ok, image: {img}, script: [printf 'abc\\n'] }}\n  - {{ name: flaky, image: {img}, retry: 1, allow_failure: true, script: ['exit 3'] }}\n"
        ),
    )
    .await;
    let run = app.trigger("r", &json!({"ref": "main"})).await;
    let done = app.wait_run(run.id, Duration::from_secs(120)).await;
    assert_eq!(done.status, RunStatus::Success, "{done:#?}");
    let flaky = done
        .jobs
        .iter()
        .find(|j| j.name == "known/flaky")
        .expect("flaky");
    assert_eq!(flaky.attempt, 2, "{done:#?}");
    // Every attempt of a job logs the same bytes; only the last attempt's log can be read.
    let mut log_bytes = 0;
    for j in &done.jobs {
        log_bytes += j.attempt as usize * app.raw_log(j.id).await.len();
    }
    assert!(log_bytes > 0);

    assert_eventually(
        &app,
        app.pipeline_url(),
        &[
            ("gitweave_runs_triggered_total{trigger=\"api\"}", 1.0),
            ("gitweave_jobs_started_total", 3.0),
            ("gitweave_jobs_finished_total{status=\"success\"}", 1.0),
            // The retried attempt failed too: attempts are counted by how they ended.
            ("gitweave_jobs_finished_total{status=\"failed\"}", 2.0),
            ("gitweave_log_bytes_total", log_bytes as f64),
            // Issue 16: queue wait per claim, duration per ended attempt, by requirement set.
            (
                "gitweave_job_queue_wait_seconds_count{requires=\"engine=docker\"}",
                3.0,
            ),
            (
                "gitweave_job_duration_seconds_count{requires=\"engine=docker\",status=\"success\"}",
                1.0,
            ),
            (
                "gitweave_job_duration_seconds_count{requires=\"engine=docker\",status=\"failed\"}",
                2.0,
            ),
            ("gitweave_runners_offline", 0.0),
        ],
    )
    .await;
    let pipeline = scrape(&app, app.pipeline_url()).await;
    let online: Vec<_> = pipeline
        .iter()
        .filter(|(k, _)| k.starts_with("gitweave_runners_online{"))
        .collect();
    assert!(
        matches!(online.as_slice(), [(k, v)] if k.contains("engine=docker") && **v == 1.0),
        "one online docker runner: {online:?}"
    );
    assert!(
        pipeline.keys().all(|k| !k.contains("runner=")),
        "a runner's name makes no series of its own: {pipeline:#?}"
    );
    assert!(
        !pipeline.contains_key("gitweave_jobs_finished_total{status=\"queued\"}"),
        "an attempt never ends `queued`: {pipeline:#?}"
    );
    let runner = app.runner_health.clone().expect("a runner runs");
    assert_eventually(
        &app,
        &runner,
        &[
            ("runner_jobs_total{result=\"success\"}", 1.0),
            ("runner_jobs_total{result=\"exit_code\"}", 2.0),
            ("runner_jobs_running", 0.0),
        ],
    )
    .await;

    // The gateway counts each answer by class: one 404 adds exactly one `4xx`.
    let key = "http_responses_total{class=\"4xx\"}";
    let before = scrape(&app, &app.gateway).await.get(key).copied();
    let r = app
        .get(&format!("/pipelines/runs/{}", uuid::Uuid::nil()))
        .await;
    assert_eq!(r.status(), 404);
    let after = before.unwrap_or(0.0) + 1.0;
    assert_eventually(&app, &app.gateway, &[(key, after)]).await;
    app.shutdown().await;
}

#[tokio::test]
async fn queue_depth_shows_jobs_no_runner_takes_by_what_they_need_and_the_gateway_says_where() {
    let app = spawn_app().await;
    let img = image();
    app.repo_with(
        "q",
        "queue",
        &format!(
            "jobs:\n  - {{ name: far, image: {img}, runs_on: {{ zone: nowhere }}, script: [x] }}\n  - {{ name: after, image: {img}, needs: [far], runs_on: {{ zone: nowhere }}, script: [x] }}\n"
        ),
    )
    .await;
    app.trigger("q", &json!({"ref": "main"})).await;
    assert_eventually(
        &app,
        app.pipeline_url(),
        &[
            (
                "gitweave_queue_depth{requires=\"engine=docker,zone=nowhere\",state=\"due\"}",
                1.0,
            ),
            (
                "gitweave_queue_depth{requires=\"engine=docker,zone=nowhere\",state=\"held\"}",
                1.0,
            ),
        ],
    )
    .await;
    let text = page(&app, &app.gateway).await;
    assert!(
        text.starts_with("# api-gateway: its own requests only."),
        "{text}"
    );
    assert!(!text.contains("gitweave_queue_depth"), "{text}");
    app.shutdown().await;
}
