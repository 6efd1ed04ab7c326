//! A runner driven by hand over the runner protocol (`/internal/v1`), for tests that decide
//! exactly when a job is claimed and how it ends.

use crate::helpers::TestApp;
use gitweave_api::runner::{Assignment, RegisterResponse};
use serde_json::{Value, json};

/// `POST /internal/v1/runners/register` with `body`, as sent.
pub async fn register(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}/internal/v1/runners/register", app.pipeline))
        .json(&body)
        .send()
        .await
        .expect("register")
}

/// Registers with `body` (201) and returns the runner's token.
pub async fn token(app: &TestApp, body: Value) -> String {
    let r = register(app, body).await;
    assert_eq!(r.status(), 201);
    r.json::<RegisterResponse>().await.expect("json").token
}

/// A docker runner named `hand` with 8 slots; its token.
pub async fn runner_token(app: &TestApp) -> String {
    token(
        app,
        json!({"name": "hand", "capacity": 8, "engine": "docker"}),
    )
    .await
}

/// One claim waiting up to `wait_ms`: the assignment, or `None` on 204.
pub async fn claim_within(app: &TestApp, token: &str, wait_ms: u64) -> Option<Assignment> {
    claim_posting(
        &app.http,
        &app.pipeline,
        token,
        &json!({ "wait_ms": wait_ms }),
    )
    .await
}

/// Posts a claim request `body` to pipeline-svc at `base`: the assignment, or `None` on 204.
pub async fn claim_posting(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &serde_json::Value,
) -> Option<Assignment> {
    let r = http
        .post(format!("{base}/internal/v1/runners/claim"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("claim");
    if r.status() == 204 {
        return None;
    }
    assert_eq!(r.status(), 200);
    Some(r.json().await.expect("assignment"))
}

/// [`claim_within`] two seconds.
pub async fn claim(app: &TestApp, token: &str) -> Option<Assignment> {
    claim_within(app, token, 2_000).await
}

/// Reports the attempt a success with an empty log.
pub async fn finish(app: &TestApp, token: &str, a: &Assignment) {
    finish_with(app, token, a, json!({"log_end": 0, "exit_code": 0})).await;
}

/// Reports the end of the attempt with `body` (a `FinishRequest`); expects 200.
pub async fn finish_with(app: &TestApp, token: &str, a: &Assignment, body: Value) {
    let r = app
        .http
        .post(format!(
            "{}/internal/v1/jobs/{}/attempts/{}/finish",
            app.pipeline, a.job_id, a.attempt
        ))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("finish");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}
