//! A deleted repo's webhook deliveries go with it: the same delivery sent to a repo re-made
//! under that name is a new delivery, not a repeat of one that no longer exists.

use super::{SECRET, deliver, fixture, json_of, no_runner, repo_with, simple_yaml};
use crate::helpers::spawn_with;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn deleting_a_repo_forgets_its_deliveries() {
    let app = spawn_with(no_runner()).await;
    let settings = json!({ "webhook_secret": SECRET });
    repo_with(&app, "gone", settings.clone(), &simple_yaml()).await;
    let body = fixture("github-push-with-new-branch.json");
    let (status, first) =
        json_of(deliver(&app, "gone", "github", "push", "del-1", &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first_id = first["id"].as_str().expect("id").to_owned();
    let r = app
        .post_json(&format!("/pipelines/runs/{first_id}/cancel"), &json!({}))
        .await;
    assert!(r.status().is_success(), "cancel: {}", r.status());
    let r = app
        .send_raw(reqwest::Method::DELETE, "/repos/gone", "text/plain", "")
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    repo_with(&app, "gone", settings, &simple_yaml()).await;
    let (status, again) =
        json_of(deliver(&app, "gone", "github", "push", "del-1", &body).await).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a new run, not the deleted one: {again}"
    );
    assert_ne!(again["id"].as_str(), Some(first_id.as_str()));
    app.shutdown().await;
}
