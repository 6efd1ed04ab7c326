//! Triggers, run lookup and paginated run lists (no runner: runs stay queued).

use crate::helpers::{envelope, image, no_runner, spawn_with};
use serde_json::{Value, json};
use std::collections::HashSet;

fn yaml() -> String {
    format!(
        "inputs:\n  version: {{ required: true }}\n  profile: {{ default: release }}\njobs:\n  - name: one\n    image: {i}\n    script: [\"echo ${{{{ inputs.version }}}}\"]\n  - name: two\n    image: {i}\n    script: [\"true\"]\n",
        i = image()
    )
}

#[tokio::test]
async fn trigger_creates_a_queued_run_with_all_jobs_in_order() {
    let app = spawn_with(no_runner()).await;
    app.repo_with("r", "build", &yaml()).await;
    let r = app
        .post_json(
            "/repos/r/pipelines/run",
            &json!({"ref": "feature/x", "commit": "0123abcd", "inputs": {"version": "1.2"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let run: Value = r.json().await.expect("json");
    assert_eq!(
        location,
        format!("/api/v1/pipelines/runs/{}", run["id"].as_str().expect("id"))
    );
    assert_eq!(run["repo"], "r");
    assert_eq!(run["ref"], "feature/x");
    assert_eq!(run["commit"], "0123abcd");
    assert_eq!(run["status"], "queued");
    assert_eq!(run["trigger"], "api");
    let jobs = run["jobs"].as_array().expect("jobs");
    let names: Vec<&str> = jobs.iter().filter_map(|j| j["name"].as_str()).collect();
    assert_eq!(names, ["build/one", "build/two"]);
    for j in jobs {
        assert_eq!(j["status"], "queued");
        assert_eq!(j["attempt"], 0);
        assert_eq!(j["template"], "build");
    }
    let shown: Value = app.get_json(&location.replace("/api/v1", "")).await;
    assert_eq!(shown, run);

    // Default ref is the repo's default branch.
    let run = app.trigger("r", &json!({"inputs": {"version": "2"}})).await;
    assert_eq!(run.git_ref, "main");
    assert_eq!(run.commit, None);
    app.shutdown().await;
}

#[tokio::test]
async fn the_trigger_answers_the_run_as_committed_with_its_first_plan_step() {
    let app = spawn_with(no_runner()).await;
    let i = image();
    app.repo_with(
        "r",
        "flow",
        &format!(
            "jobs:\n  - {{ name: a, image: {i}, script: [\"true\"] }}\n  - {{ name: b, image: {i}, script: [\"true\"], needs: [a] }}\n  - {{ name: m, image: {i}, script: [\"true\"], when: manual }}\n"
        ),
    )
    .await;
    let r = app.post_json("/repos/r/pipelines/run", &json!({})).await;
    assert_eq!(r.status(), 201);
    let answered: Value = r.json().await.expect("json");
    let statuses: Vec<(&str, &str)> = answered["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["name"].as_str().expect("name"),
                j["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("flow/a", "queued"),
            ("flow/b", "queued"),
            ("flow/m", "manual")
        ]
    );
    let id = answered["id"].as_str().expect("id");
    let shown: Value = app.get_json(&format!("/pipelines/runs/{id}")).await;
    assert_eq!(shown, answered, "the answer is what was committed");
    let run_id = id.parse().expect("uuid");
    let events = app.events(run_id).await;
    let kinds: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| {
            let job = e.job_id.and_then(|j| {
                answered["jobs"]
                    .as_array()
                    .and_then(|js| js.iter().find(|x| x["id"] == j.to_string()))
                    .and_then(|x| x["name"].as_str())
            });
            (e.event_type.as_str(), job)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("run.created", None),
            ("job.queued", Some("flow/a")),
            ("job.queued", Some("flow/b")),
            ("job.queued", Some("flow/m")),
            ("job.manual", Some("flow/m")),
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    app.assert_replays(run_id).await;
    app.shutdown().await;
}

#[tokio::test]
async fn trigger_errors_name_the_problem_and_create_nothing() {
    let app = spawn_with(no_runner()).await;
    let (s, _, msg) = envelope(
        app.post_json("/repos/ghost/pipelines/run", &json!({}))
            .await,
    )
    .await;
    assert_eq!(s, 404, "{msg}");
    app.create_repo("bare").await;
    let (s, code, msg) =
        envelope(app.post_json("/repos/bare/pipelines/run", &json!({})).await).await;
    assert_eq!((s, code.as_str()), (422, "no_pipeline"));
    assert!(msg.contains("attach"), "{msg}");

    app.repo_with("r", "build", &yaml()).await;
    let (s, code, msg) = envelope(app.post_json("/repos/r/pipelines/run", &json!({})).await).await;
    assert_eq!((s, code.as_str()), (422, "invalid_input"));
    assert!(
        msg.contains("version") && msg.contains("build"),
        "missing required input named: {msg}"
    );
    let (s, code, msg) = envelope(
        app.post_json(
            "/repos/r/pipelines/run",
            &json!({"inputs": {"version": "1", "colour": "red"}}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (422, "unknown_input"));
    assert!(msg.contains("colour"), "{msg}");
    let (s, code, _) = envelope(
        app.post_json(
            "/repos/r/pipelines/run",
            &json!({"inputs": {"version": {"nested": 1}}}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (422, "invalid_input"));
    let (s, code, _) = envelope(
        app.post_json(
            "/repos/r/pipelines/run",
            &json!({"templates": ["deploy"], "inputs": {"version": "1"}}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (422, "template_not_attached"));
    let (s, code, _) = envelope(
        app.post_json(
            "/repos/r/pipelines/run",
            &json!({"commit": "not-a-sha", "inputs": {"version": "1"}}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (422, "invalid_commit"));
    let r = app
        .send_raw(
            reqwest::Method::POST,
            "/repos/r/pipelines/run",
            "application/json",
            "{\"ref\":",
        )
        .await;
    let (s, code, _) = envelope(r).await;
    assert_eq!((s, code.as_str()), (400, "malformed_json"));

    let list: Value = app.get_json("/repos/r/pipelines/runs").await;
    assert_eq!(list["runs"], json!([]), "no refused trigger made a run");
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = spawn_with(no_runner()).await;
    let (s, code, _) = envelope(
        app.get(&format!("/pipelines/runs/{}", uuid::Uuid::now_v7()))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, msg) = envelope(app.get("/pipelines/runs/12345").await).await;
    assert_eq!((s, code.as_str()), (400, "invalid_id"));
    assert!(msg.contains("12345"));
    let (s, _, _) = envelope(app.get(&format!("/jobs/{}", uuid::Uuid::now_v7())).await).await;
    assert_eq!(s, 404);
    let (s, _, _) = envelope(app.get("/jobs/x/logs").await).await;
    assert_eq!(s, 400);
    let (s, code, _) = envelope(app.get("/no/such/route").await).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    app.shutdown().await;
}

#[tokio::test]
async fn runs_are_listed_newest_first_with_a_cursor() {
    let app = spawn_with(no_runner()).await;
    app.repo_with("r", "build", &yaml()).await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            app.trigger("r", &json!({"inputs": {"version": i.to_string()}}))
                .await
                .id,
        );
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let page: Value = app
            .get_json(&format!("/repos/r/pipelines/runs?limit=3{q}"))
            .await;
        let runs = page["runs"].as_array().expect("runs");
        assert!(runs.len() <= 3);
        for r in runs {
            seen.push(uuid::Uuid::parse_str(r["id"].as_str().expect("id")).expect("uuid"));
            assert_eq!(
                r["jobs"].as_array().map(Vec::len),
                Some(2),
                "runs carry their jobs"
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, made, "every run once, newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    let (s, _, _) = envelope(app.get("/repos/r/pipelines/runs?limit=0").await).await;
    assert_eq!(s, 400);
    let (s, _, _) = envelope(app.get("/repos/r/pipelines/runs?cursor=garbage").await).await;
    assert_eq!(s, 400);
    app.shutdown().await;
}
