//! Repos: create, update, show, list, and bad input.

use crate::helpers::{envelope, no_runner, spawn_with};
use serde_json::{Value, json};

#[tokio::test]
async fn create_update_show_and_list_never_return_the_secret() {
    let app = spawn_with(no_runner()).await;
    let r = app
        .put_json(
            "/repos/web-app",
            &json!({"clone_url": "https://git.example/web.git", "webhook_secret": "s3cret"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["name"], "web-app");
    assert_eq!(created["default_branch"], "main");
    assert_eq!(created["has_webhook_secret"], true);
    assert!(!created.to_string().contains("s3cret"));

    let r = app
        .put_json("/repos/web-app", &json!({"default_branch": "trunk"}))
        .await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.expect("json");
    assert_eq!(updated["default_branch"], "trunk");
    assert_eq!(
        updated["clone_url"], "https://git.example/web.git",
        "absent fields keep their value"
    );

    let r = app
        .put_json("/repos/web-app", &json!({"clone_url": null}))
        .await;
    let cleared: Value = r.json().await.expect("json");
    assert_eq!(cleared["clone_url"], Value::Null, "null clears");

    let shown: Value = app.get_json("/repos/web-app").await;
    assert_eq!(shown["default_branch"], "trunk");
    app.create_repo("api").await;
    let list: Value = app.get_json("/repos").await;
    let names: Vec<&str> = list["repos"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["api", "web-app"]);
    assert!(!list.to_string().contains("s3cret"));
    app.shutdown().await;
}

#[tokio::test]
async fn bad_repo_requests_get_clear_errors_and_the_service_keeps_serving() {
    let app = spawn_with(no_runner()).await;
    let (s, code, msg) = envelope(app.get("/repos/nope").await).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    assert!(msg.contains("nope"), "{msg}");

    let (s, code, msg) = envelope(app.put_json("/repos/bad%20name", &json!({})).await).await;
    assert_eq!((s, code.as_str()), (400, "invalid_name"));
    assert!(msg.contains("must match"), "{msg}");
    let (s, _, _) = envelope(app.put_json("/repos/.hidden", &json!({})).await).await;
    assert_eq!(s, 400);

    let r = app
        .send_raw(
            reqwest::Method::PUT,
            "/repos/ok",
            "application/json",
            "{\"clone_url\": ",
        )
        .await;
    let (s, code, msg) = envelope(r).await;
    assert_eq!((s, code.as_str()), (400, "malformed_json"));
    assert!(msg.contains("line 1"), "names where: {msg}");

    let (s, code, _) = envelope(app.put_json("/repos/ok", &json!({"clone_url": 42})).await).await;
    assert_eq!((s, code.as_str()), (422, "invalid_body"));
    let (s, code, msg) = envelope(
        app.put_json("/repos/ok", &json!({"clone_url": "not a url"}))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (422, "invalid_clone_url"));
    assert!(msg.contains("clone_url"));
    let (s, _, msg) = envelope(app.put_json("/repos/ok", &json!({"colne_url": "x"})).await).await;
    assert_eq!(s, 422);
    assert!(msg.contains("colne_url"), "unknown fields are named: {msg}");

    // Still serving, and nothing was stored by the refused requests.
    let list: Value = app.get_json("/repos").await;
    assert_eq!(list["repos"], json!([]));
    app.create_repo("ok").await;
    app.shutdown().await;
}
