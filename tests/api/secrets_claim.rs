//! Secrets at claim (SPEC §10), seen by a runner driven by hand over the runner protocol: a
//! job gets exactly the secrets it names (the repo's winning over a global one) in its
//! assignment; an unknown name, or a protected secret on a ref that is not protected, fails
//! the job as a `config_error` before any runner gets it; no API answer or event holds a value.

use crate::hand::{claim, runner_token};
use crate::helpers::{TestApp, image, no_runner, spawn_with};
use serde_json::{Value, json};
use std::time::Duration;

const REPO_VALUE: &str = "repo-deploy-value-4a1b";
const GLOBAL_VALUE: &str = "global-deploy-value-9e2c";
const NPM_VALUE: &str = "npm-token-value-77d0";
const PROT_VALUE: &str = "protected-value-3f5e";

async fn put(app: &TestApp, path: &str, body: Value) {
    let r = app.put_json(path, &body).await;
    assert!(r.status().is_success(), "PUT {path}: {}", r.status());
}

/// The run's view and events as text, after it ended.
async fn failed_run_text(app: &TestApp, run: uuid::Uuid) -> (Value, String) {
    let ended = app.wait_run(run, Duration::from_secs(20)).await;
    let view = app.get_json(&format!("/pipelines/runs/{}", ended.id)).await;
    let events = app
        .get(&format!("/pipelines/runs/{run}/events"))
        .await
        .text()
        .await
        .expect("events");
    (view.clone(), format!("{view}{events}"))
}

#[tokio::test]
async fn a_job_gets_the_secrets_it_names_and_fails_before_it_starts_without_them() {
    let app = spawn_with(no_runner()).await;
    let token = runner_token(&app).await;
    let img = image();
    app.repo_with(
        "web",
        "t",
        &format!("jobs:\n  - name: deploy\n    image: {img}\n    script: [\"./deploy\"]\n    secrets: [DEPLOY_TOKEN, {{name: NPM_TOKEN, env: NODE_AUTH_TOKEN}}]\n"),
    )
    .await;
    put(
        &app,
        "/repos/web/secrets/DEPLOY_TOKEN",
        json!({"value": REPO_VALUE}),
    )
    .await;
    put(
        &app,
        "/secrets/DEPLOY_TOKEN",
        json!({"value": GLOBAL_VALUE}),
    )
    .await;
    put(&app, "/secrets/UNUSED_ONE", json!({"value": PROT_VALUE})).await;

    // NPM_TOKEN is set nowhere: config_error before any runner gets the job.
    let run = app.trigger("web", &json!({"commit": "feedbeef"})).await;
    assert!(
        claim(&app, &token).await.is_none(),
        "no runner gets a job whose secret is missing"
    );
    let (view, text) = failed_run_text(&app, run.id).await;
    let job = &view["jobs"][0];
    assert_eq!(job["status"], "failed", "{view}");
    assert_eq!(job["error_class"], "config_error", "{view}");
    let reason = job["reason"].as_str().expect("the job view has the reason");
    assert!(
        reason.contains("NPM_TOKEN") && reason.contains("web"),
        "{reason}"
    );
    assert!(text.contains(reason), "the event says the same");

    // With it set globally, the job gets both, the repo's DEPLOY_TOKEN winning, and no other.
    put(&app, "/secrets/NPM_TOKEN", json!({"value": NPM_VALUE})).await;
    let run = app.trigger("web", &json!({"commit": "feedbeef"})).await;
    let a = claim(&app, &token).await.expect("the job");
    assert_eq!(a.run_id, run.id);
    let got: Vec<(&str, &str, &str)> = a
        .secrets
        .iter()
        .map(|s| (s.name.as_str(), s.env.as_str(), s.value.expose()))
        .collect();
    assert_eq!(
        got,
        [
            ("DEPLOY_TOKEN", "DEPLOY_TOKEN", REPO_VALUE),
            ("NPM_TOKEN", "NODE_AUTH_TOKEN", NPM_VALUE)
        ]
    );
    assert!(
        !format!("{a:?}").contains(REPO_VALUE),
        "Debug of an assignment shows no value"
    );
    let view = app.get_json(&format!("/pipelines/runs/{}", run.id)).await;
    let events = app
        .get(&format!("/pipelines/runs/{}/events", run.id))
        .await
        .text()
        .await
        .expect("events");
    let listed = app.get_json("/repos/web/secrets").await;
    let all = format!("{view}{events}{listed}{}", text);
    for v in [REPO_VALUE, GLOBAL_VALUE, NPM_VALUE, PROT_VALUE] {
        assert!(!all.contains(v), "a value in an API answer or event");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_protected_secret_is_given_only_to_runs_of_the_default_branch() {
    let app = spawn_with(no_runner()).await;
    let token = runner_token(&app).await;
    let img = image();
    app.repo_with(
        "web",
        "t",
        &format!("jobs:\n  - {{ name: deploy, image: {img}, script: [x], secrets: [PROD_KEY] }}\n"),
    )
    .await;
    put(
        &app,
        "/repos/web/secrets/PROD_KEY",
        json!({"value": PROT_VALUE, "protected": true}),
    )
    .await;

    let run = app
        .trigger("web", &json!({"ref": "feature/x", "commit": "feedbeef"}))
        .await;
    assert!(
        claim(&app, &token).await.is_none(),
        "not handed out on an unprotected ref"
    );
    let (view, text) = failed_run_text(&app, run.id).await;
    assert_eq!(view["jobs"][0]["error_class"], "config_error", "{view}");
    let reason = view["jobs"][0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("PROD_KEY") && reason.contains("feature/x"),
        "{reason}"
    );
    assert!(!text.contains(PROT_VALUE));

    let run = app
        .trigger("web", &json!({"ref": "main", "commit": "feedbeef"}))
        .await;
    let a = claim(&app, &token).await.expect("handed out on main");
    assert_eq!(a.run_id, run.id);
    assert_eq!(a.secrets.len(), 1);
    assert_eq!(a.secrets[0].value.expose(), PROT_VALUE);
    app.shutdown().await;
}

#[tokio::test]
async fn protected_refs_are_globs_set_on_the_repo() {
    let app = spawn_with(no_runner()).await;
    let token = runner_token(&app).await;
    let img = image();
    app.repo_with(
        "web",
        "t",
        &format!("jobs:\n  - {{ name: deploy, image: {img}, script: [x], secrets: [PROD_KEY] }}\n"),
    )
    .await;
    put(
        &app,
        "/repos/web/secrets/PROD_KEY",
        json!({"value": PROT_VALUE, "protected": true}),
    )
    .await;
    let (status, code, message) = crate::helpers::envelope(
        app.put_json("/repos/web", &json!({"protected_refs": ["["]}))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (422, "invalid_protected_ref"),
        "{message}"
    );
    // The default is the default branch; the view shows what is in force.
    let repo = app.get_json("/repos/web").await;
    assert_eq!(repo["protected_refs"], json!(["main"]), "{repo}");
    put(&app, "/repos/web", json!({"protected_refs": ["release/*"]})).await;
    // A PUT that does not name protected_refs keeps them.
    put(&app, "/repos/web", json!({"default_branch": "trunk"})).await;
    let repo = app.get_json("/repos/web").await;
    assert_eq!(repo["protected_refs"], json!(["release/*"]), "{repo}");
    put(&app, "/repos/web", json!({"default_branch": "main"})).await;

    let run = app
        .trigger(
            "web",
            &json!({"ref": "refs/heads/release/1.2", "commit": "feedbeef"}),
        )
        .await;
    let a = claim(&app, &token).await.expect("a protected ref");
    assert_eq!((a.run_id, a.secrets.len()), (run.id, 1));
    let finished = app
        .http
        .post(format!(
            "{}/internal/v1/jobs/{}/attempts/{}/finish",
            app.pipeline, a.job_id, a.attempt
        ))
        .bearer_auth(&token)
        .json(&json!({"log_end": 0, "exit_code": 0}))
        .send()
        .await
        .expect("finish");
    assert_eq!(finished.status(), 200);

    // main is no longer protected once protected_refs is set without it.
    let run = app
        .trigger("web", &json!({"ref": "main", "commit": "feedbeef"}))
        .await;
    assert!(claim(&app, &token).await.is_none());
    let (view, _) = failed_run_text(&app, run.id).await;
    let reason = view["jobs"][0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("PROD_KEY") && reason.contains("release/*"),
        "{reason}"
    );
    app.shutdown().await;
}
