//! Secrets end to end (SPEC §10): a value stored through the API reaches the job that names
//! it, run by the real runner on the real Docker engine, as an environment variable, and the
//! stored log, the job view and the run's events hold `[MASKED]` where the job printed it.

use crate::helpers::{Options, image, spawn_with};
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::time::Duration;

const VALUE: &str = "e2e-deploy-token-5c9d1f";

#[tokio::test]
async fn a_stored_secret_reaches_its_job_as_a_variable_and_is_masked_in_the_log() {
    let app = spawn_with(Options::default()).await;
    let img = image();
    app.repo_with(
        "deploy",
        "d",
        &format!(
            r#"jobs:
  - name: push
    image: {img}
    secrets: [{{name: DEPLOY_TOKEN, env: TOKEN}}]
    script:
      - echo "len=${{#TOKEN}}"
      - echo "plain=$TOKEN"
      - printf '%s' "$TOKEN" | base64
      - printf '%s' "$TOKEN" | head -c 8; sleep 1; printf '%s\n' "$TOKEN" | tail -c +9
  - name: other
    image: {img}
    script:
      - echo "other=${{TOKEN:-unset}}"
"#
        ),
    )
    .await;
    let r = app
        .put_json(
            "/repos/deploy/secrets/DEPLOY_TOKEN",
            &json!({ "value": VALUE }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let run = app.trigger("deploy", &json!({})).await;
    let run = app.wait_run(run.id, Duration::from_secs(120)).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let job = |name: &str| run.jobs.iter().find(|j| j.name == name).expect("job").id;
    let log = String::from_utf8(app.raw_log(job("d/push")).await).expect("utf8");
    assert!(log.contains(&format!("len={}", VALUE.len())), "{log}");
    assert!(log.contains("plain=[MASKED]"), "{log}");
    assert!(!log.contains(VALUE), "{log}");
    assert!(!log.contains(&VALUE[..8]), "the split print: {log}");
    let other = String::from_utf8(app.raw_log(job("d/other")).await).expect("utf8");
    assert!(
        other.contains("other=unset"),
        "only the job naming it gets it: {other}"
    );
    let view = app
        .get(&format!("/pipelines/runs/{}", run.id))
        .await
        .text()
        .await
        .expect("run");
    let events = app
        .get(&format!("/pipelines/runs/{}/events", run.id))
        .await
        .text()
        .await
        .expect("events");
    assert!(!view.contains(VALUE) && !events.contains(VALUE));
    app.shutdown().await;
}
