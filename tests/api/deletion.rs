//! `DELETE /repos/{repo}` and `DELETE /templates/{name}` (and `gitweave delete …`): what goes
//! with them, and the 409s that protect active runs and attached templates.

use crate::helpers::{Options, TestApp, bin, envelope, image, no_runner, spawn_with};
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// `DELETE {path}` through the gateway, with the test's token.
async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.send_raw(reqwest::Method::DELETE, path, "text/plain", "")
        .await
}

async fn gitweave(gateway: &str, token: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(bin("gitweave"))
        .args(["--url", gateway, "--token", token])
        .args(args)
        .output()
        .await
        .expect("run gitweave")
}

#[tokio::test]
async fn a_repo_goes_with_its_runs_logs_and_events_but_not_while_a_run_is_active() {
    let token = "delete-test-token";
    let app = spawn_with(Options {
        api_token: Some(token.into()),
        ..Options::default()
    })
    .await;
    let img = image();
    app.repo_with(
        "shop",
        "release",
        &format!("jobs:\n  - {{ name: build, image: {img}, script: [echo built] }}\n  - {{ name: ship, image: {img}, script: [echo shipped], when: manual }}\n"),
    )
    .await;
    let run = app.trigger("shop", &json!({})).await;
    let build = run
        .jobs
        .iter()
        .find(|j| j.name == "release/build")
        .expect("build job")
        .id;

    // Active (running, then blocked on the manual job): refused, naming the run.
    let (status, code, message) = envelope(delete(&app, "/repos/shop").await).await;
    assert_eq!((status, code.as_str()), (409, "run_active"), "{message}");
    assert!(message.contains(&run.id.to_string()), "{message}");
    let out = gitweave(&app.gateway, token, &["delete", "repo", "shop"]).await;
    assert!(!out.status.success(), "the CLI fails on a 409: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("have not ended"),
        "{out:?}"
    );
    assert_eq!(app.get("/repos/shop").await.status(), 200, "still there");

    // Ended: its answers are settled (and cached) before the delete.
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert!(r.status().is_success(), "cancel: {}", r.status());
    let ended = app.wait_run(run.id, LIMIT).await;
    assert_eq!(ended.status, RunStatus::Canceled, "{ended:#?}");
    assert_eq!(
        app.get(&format!("/pipelines/runs/{}", run.id))
            .await
            .status(),
        200
    );
    let page = app.logs_page(build, 0, 65536).await;
    assert!(page.complete, "{page:?}");

    // Without the token: 401, nothing deleted.
    let r = app
        .http
        .delete(app.api("/repos/shop"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 401);

    let out = gitweave(&app.gateway, token, &["delete", "repo", "shop"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "repo shop deleted"
    );
    for path in [
        "/repos/shop".to_owned(),
        "/repos/shop/templates".to_owned(),
        "/repos/shop/pipelines/runs".to_owned(),
        format!("/pipelines/runs/{}", run.id),
        format!("/pipelines/runs/{}/events", run.id),
        format!("/jobs/{build}"),
        format!("/jobs/{build}/logs?offset=0&limit=65536"),
        format!("/jobs/{build}/logs/raw"),
    ] {
        let (status, code, _) = envelope(app.get(&path).await).await;
        assert_eq!((status, code.as_str()), (404, "not_found"), "GET {path}");
    }
    let (status, code, message) = envelope(delete(&app, "/repos/shop").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"), "{message}");
    assert!(message.contains("shop"), "{message}");

    // The name is free again, and the template (now detached) can go too.
    app.create_repo("shop").await;
    let runs: serde_json::Value = app.get_json("/repos/shop/pipelines/runs").await;
    assert_eq!(runs["runs"], json!([]), "{runs}");
    let out = gitweave(&app.gateway, token, &["delete", "template", "release"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}

#[tokio::test]
async fn a_template_goes_with_its_versions_but_not_while_attached() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    let v1 = format!("jobs:\n  - {{ name: a, image: {img}, script: [echo 1] }}\n");
    let v2 = format!("jobs:\n  - {{ name: a, image: {img}, script: [echo 2] }}\n");
    app.repo_with("web", "ci", &v1).await;
    app.template_ok("ci", &v2).await;
    app.create_repo("api").await;
    app.attach("api", "ci").await;
    let run = app.trigger("web", &json!({})).await;

    let (status, code, message) = envelope(delete(&app, "/templates/ci").await).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "template_attached"),
        "{message}"
    );
    assert!(message.contains("api, web"), "{message}");
    for repo in ["api", "web"] {
        let r = delete(&app, &format!("/repos/{repo}/templates/ci")).await;
        assert_eq!(r.status(), 204, "detach from {repo}");
    }
    let r = delete(&app, "/templates/ci").await;
    assert_eq!(r.status(), 204);
    let (status, code, _) = envelope(app.get("/templates/ci").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let list: serde_json::Value = app.get_json("/templates").await;
    assert_eq!(list["templates"], json!([]), "{list}");
    // A run made from it keeps its jobs.
    let kept = app.run(run.id).await;
    assert_eq!(kept.jobs.len(), 1, "{kept:#?}");

    // Re-created under the same name, it starts again at version 1.
    let r = app.put_template("ci", &v1).await;
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["version"], 1, "{body}");

    for (path, status, code) in [
        ("/templates/nope", 404, "not_found"),
        ("/templates/bad%20name", 400, "invalid_name"),
        ("/repos/nope", 404, "not_found"),
        ("/repos/bad%20name", 400, "invalid_name"),
    ] {
        let (s, c, message) = envelope(delete(&app, path).await).await;
        assert_eq!((s, c.as_str()), (status, code), "DELETE {path}: {message}");
    }
    app.shutdown().await;
}
