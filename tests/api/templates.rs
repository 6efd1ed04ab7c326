//! Templates: versioned upload, validation errors with positions, attachments.

use crate::helpers::{envelope, image, no_runner, spawn_with};
use serde_json::{Value, json};

fn build_yaml(echo: &str) -> String {
    format!(
        "inputs:\n  profile: {{ default: release }}\njobs:\n  - name: compile\n    image: {img}\n    script:\n      - echo {echo} ${{{{ inputs.profile }}}}\n  - name: test\n    image: {img}\n    script: [\"true\"]\n",
        img = image()
    )
}

#[tokio::test]
async fn upload_versions_only_on_change_and_shows_the_body() {
    let app = spawn_with(no_runner()).await;
    let r = app.put_template("build", &build_yaml("a")).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v,
        json!({"name": "build", "version": 1, "jobs": ["compile", "test"]})
    );

    let r = app.put_template("build", &build_yaml("a")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["version"],
        1,
        "same body, same version"
    );

    let r = app.put_template("build", &build_yaml("b")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["version"], 2);

    let shown: Value = app.get_json("/templates/build").await;
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["body"], build_yaml("b"));
    let list: Value = app.get_json("/templates").await;
    assert_eq!(list["templates"][0]["name"], "build");
    assert!(
        list["templates"][0].get("body").is_none(),
        "lists omit bodies"
    );
    let (s, _, _) = envelope(app.get("/templates/missing").await).await;
    assert_eq!(s, 404);
    app.shutdown().await;
}

#[tokio::test]
async fn invalid_templates_are_refused_with_the_problem_named_and_nothing_stored() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed yaml",
            "jobs:\n  - name: a\n    script: [oops\n".into(),
            "line",
        ),
        ("empty jobs", "jobs: []\n".into(), "jobs must not be empty"),
        ("no jobs key", "env: {A: b}\n".into(), "jobs"),
        (
            "duplicate job names",
            format!(
                "jobs:\n  - {{name: a, image: {img}, script: [x]}}\n  - {{name: a, image: {img}, script: [y]}}\n"
            ),
            "duplicate job name \"a\"",
        ),
        (
            "empty script",
            format!("jobs:\n  - {{name: a, image: {img}, script: []}}\n"),
            "script",
        ),
        (
            "missing image",
            "jobs:\n  - {name: a, script: [x]}\n".into(),
            "no image",
        ),
        (
            "bad job name",
            format!("jobs:\n  - {{name: \"a b\", image: {img}, script: [x]}}\n"),
            "a b",
        ),
        (
            "unknown field",
            format!("jobs:\n  - {{name: a, image: {img}, scrpit: [x]}}\n"),
            "scrpit",
        ),
        (
            "undeclared input",
            format!(
                "jobs:\n  - {{name: a, image: {img}, script: [\"echo ${{{{ inputs.nope }}}}\"]}}\n"
            ),
            "nope",
        ),
        (
            "bad timeout",
            format!("jobs:\n  - {{name: a, image: {img}, script: [x], timeout: 5 parsecs}}\n"),
            "timeout",
        ),
    ];
    for (what, yaml, needle) in cases {
        let (s, code, msg) = envelope(app.put_template("t", &yaml).await).await;
        assert_eq!(
            (s, code.as_str()),
            (422, "invalid_template"),
            "{what}: {msg}"
        );
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} should mention {needle:?}"
        );
    }
    let (_, _, msg) = envelope(
        app.put_template("t", "jobs:\n  - name: a\n    script: [oops\n")
            .await,
    )
    .await;
    assert!(
        msg.contains("line") && msg.contains("column"),
        "YAML errors carry a position: {msg}"
    );

    let r = app
        .send_raw(
            reqwest::Method::PUT,
            "/templates/t",
            "application/yaml",
            vec![0xff, 0xfe, b'j'],
        )
        .await;
    assert_eq!(r.status(), 400);
    let (s, code, _) = envelope(app.put_template("bad name", "jobs: []").await).await;
    assert_eq!((s, code.as_str()), (400, "invalid_name"));

    let list: Value = app.get_json("/templates").await;
    assert_eq!(list["templates"], json!([]), "nothing stored");
    app.shutdown().await;
}

#[tokio::test]
async fn attach_in_order_with_default_inputs_and_detach() {
    let app = spawn_with(no_runner()).await;
    app.create_repo("r").await;
    app.template_ok("build", &build_yaml("a")).await;
    app.template_ok("test", &build_yaml("t")).await;

    let r = app
        .put_json(
            "/repos/r/templates/build",
            &json!({"inputs": {"profile": "debug"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.expect("json");
    assert_eq!(
        a,
        json!({"name": "build", "position": 1, "inputs": {"profile": "debug"}, "version": 1})
    );
    let r = app.put_json("/repos/r/templates/test", &json!({})).await;
    assert_eq!(r.status(), 201);
    let r = app
        .put_json(
            "/repos/r/templates/build",
            &json!({"inputs": {"profile": "dev"}}),
        )
        .await;
    assert_eq!(r.status(), 200, "re-attaching updates in place");

    let list: Value = app.get_json("/repos/r/templates").await;
    let names: Vec<&str> = list["templates"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["build", "test"]);
    assert_eq!(list["templates"][0]["inputs"]["profile"], "dev");

    let (s, code, msg) = envelope(
        app.put_json(
            "/repos/r/templates/build",
            &json!({"inputs": {"nope": "x"}}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (422, "unknown_input"));
    assert!(msg.contains("nope"));
    let (s, _, _) = envelope(app.put_json("/repos/r/templates/missing", &json!({})).await).await;
    assert_eq!(s, 404);
    let (s, _, _) = envelope(
        app.put_json("/repos/missing/templates/build", &json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 404);

    let r = app
        .http
        .delete(app.api("/repos/r/templates/build"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let r = app
        .http
        .delete(app.api("/repos/r/templates/build"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 404);
    let list: Value = app.get_json("/repos/r/templates").await;
    assert_eq!(list["templates"].as_array().map(Vec::len), Some(1));
    app.shutdown().await;
}
