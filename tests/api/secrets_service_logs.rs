//! SPEC §10: "No API answer, event, log line of a service, or error message ever contains a
//! value". The three real binaries run as processes at `RUST_LOG=debug`, every line they write
//! kept in files; a secret is stored, replaced, refused, given to a job that prints it in
//! several forms and fails, and named by a job that cannot have it. Then no file holds the
//! value, nor its base64, percent or hex forms.

use crate::helpers::{free_port, fresh_database, image};
use crate::procs::{
    gateway_process_logged, pipeline_process_logged, runner_process_logged, wait_ready,
};
use base64::Engine as _;
use gitweave_api::public::Run;
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::time::Duration;

const TOKEN: &str = "api-token-for-service-log-test";
const VALUE: &str = "svc-log-secret-7f3a9c21";
const REPLACED: &str = "svc-log-replaced-b84e06d1";

/// Every form of `v` that masking knows, as it would appear in a log.
fn forms(v: &str) -> Vec<String> {
    let b = v.as_bytes();
    vec![
        v.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(b),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
        b.iter().map(|c| format!("{c:02x}")).collect(),
        b.iter().map(|c| format!("%{c:02X}")).collect(),
    ]
}

#[tokio::test]
async fn no_service_writes_a_secret_to_its_own_log() {
    let dir = tempfile_dir();
    let db = fresh_database().await;
    let (pport, gport) = (free_port(), free_port());
    let pipeline_url = format!("http://127.0.0.1:{pport}");
    let debug = [("RUST_LOG", "debug"), ("GITWEAVE_API_TOKEN", TOKEN)];
    let pipeline = pipeline_process_logged(&db, pport, &debug, &dir.join("pipeline.log"));
    wait_ready(&pipeline_url).await;
    let gateway = gateway_process_logged(&pipeline_url, gport, &debug, &dir.join("gateway.log"));
    let gateway_url = format!("http://127.0.0.1:{gport}");
    wait_ready(&gateway_url).await;
    let name = format!("svclog-{}", uuid::Uuid::new_v4().simple());
    let runner = runner_process_logged(
        &pipeline_url,
        &name,
        &format!("{name}-"),
        &[("RUST_LOG", "debug")],
        &dir.join("runner.log"),
    );

    let http = reqwest::Client::new();
    let api = format!("{gateway_url}/api/v1");
    let send = |r: reqwest::RequestBuilder| async move {
        r.bearer_auth(TOKEN).send().await.expect("request")
    };
    let img = image();
    let yaml = format!(
        r#"jobs:
  - name: leak
    image: {img}
    secrets: [{{name: DEPLOY_TOKEN, env: TOKEN}}]
    script:
      - echo "plain=$TOKEN"
      - printf '%s' "$TOKEN" | base64
      - echo "failing with $TOKEN" >&2; exit 3
  - name: unknown
    image: {img}
    secrets: [NOT_STORED]
    script: [true]
"#
    );
    let r = send(
        http.put(format!("{api}/templates/t"))
            .header("content-type", "application/yaml")
            .body(yaml),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    assert!(
        send(http.put(format!("{api}/repos/r")).json(&json!({})))
            .await
            .status()
            .is_success()
    );
    assert!(
        send(
            http.put(format!("{api}/repos/r/templates/t"))
                .json(&json!({}))
        )
        .await
        .status()
        .is_success()
    );
    let secret = format!("{api}/repos/r/secrets/DEPLOY_TOKEN");
    // Stored, replaced, refused (too short: the message must not echo it), then the value.
    for (value, status) in [(REPLACED, 201), ("q7xk2m", 422), (VALUE, 200)] {
        let r = send(http.put(&secret).json(&json!({ "value": value }))).await;
        assert_eq!(r.status(), status, "{value}");
        let body = r.text().await.expect("body");
        assert!(!body.contains(value), "{body}");
    }
    let run: Run = send(
        http.post(format!("{api}/repos/r/pipelines/run"))
            .json(&json!({})),
    )
    .await
    .json()
    .await
    .expect("run");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let run = loop {
        let r: Run = send(http.get(format!("{api}/pipelines/runs/{}", run.id)))
            .await
            .json()
            .await
            .expect("run view");
        if r.status.is_terminal() {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let leak = run
        .jobs
        .iter()
        .find(|j| j.name == "t/leak")
        .expect("leak job");
    let log = send(http.get(format!("{api}/jobs/{}/logs/raw", leak.id)))
        .await
        .text()
        .await
        .expect("log");
    assert!(
        log.contains("plain=[MASKED]") && log.contains("failing with [MASKED]"),
        "{log}"
    );

    // SIGTERM: the services flush and exit before their files are read.
    runner.terminate().await;
    gateway.terminate().await;
    pipeline.terminate().await;
    for file in ["pipeline.log", "gateway.log", "runner.log"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("service log");
        // The logs are really there: each service logged this run at debug level.
        assert!(
            text.lines().count() > 5,
            "{file} holds almost nothing, so it proves nothing:\n{text}"
        );
        for v in [VALUE, REPLACED] {
            for form in forms(v) {
                assert!(
                    !text.contains(&form),
                    "{file} holds a form of a secret ({form}):\n{text}"
                );
            }
        }
    }
    assert!(
        std::fs::read_to_string(dir.join("runner.log"))
            .expect("runner log")
            .contains(&leak.id.to_string()),
        "the runner's debug log names the job it ran"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gitweave-svclog-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
