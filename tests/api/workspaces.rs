//! Workspace volumes never outlive their runs: the runner's sweep removes the volumes it
//! labelled whose run has ended without telling it (canceled while blocked) or is unknown to
//! pipeline-svc (a crash, another pipeline-svc's database), and keeps those of active runs.

use crate::helpers::{Options, TestApp, image, spawn_with};
use gitweave_model::status::RunStatus;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(60);

fn volumes(app: &TestApp) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("name={}ws-", app.prefix),
        ])
        .output()
        .expect("docker volume ls");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Waits until `done` holds for this test's workspace volumes (at most 20 s); returns them.
async fn volumes_until(app: &TestApp, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = volumes(app);
        if done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: volumes {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_runner_removes_workspaces_of_ended_and_unknown_runs_and_keeps_active_ones() {
    let app = spawn_with(Options {
        workspace_sweep: Some(Duration::from_secs(1)),
        ..Options::default()
    })
    .await;
    // A volume as this runner labels them, of a run pipeline-svc never heard of (left by a
    // crash, or by a database that was reset).
    let unknown = Uuid::now_v7();
    let unknown_volume = format!("{}ws-{unknown}", app.prefix);
    let made = std::process::Command::new("docker")
        .args(["volume", "create", "--label"])
        .arg(format!("gitweave.runner={}", app.runner_name))
        .arg("--label")
        .arg(format!("gitweave.workspace={unknown}"))
        .arg(&unknown_volume)
        .output()
        .expect("docker volume create");
    assert!(made.status.success(), "{made:?}");

    // A run whose first job runs on this runner, then blocks on a manual job.
    let img = image();
    app.repo_with(
        "r",
        "release",
        &format!("jobs:\n  - {{ name: build, image: {img}, script: [echo built > out.txt] }}\n  - {{ name: ship, image: {img}, script: [cat out.txt], when: manual }}\n"),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let run_volume = format!("{}ws-{}", app.prefix, run.id);
    let deadline = tokio::time::Instant::now() + LIMIT;
    while app.run(run.id).await.status != RunStatus::Blocked {
        assert!(tokio::time::Instant::now() < deadline, "never blocked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The unknown run's volume goes; the blocked run's stays (it is still needed by `ship`).
    let left = volumes_until(&app, "the unknown run's volume stays", |v| {
        !v.contains(&unknown_volume)
    })
    .await;
    assert_eq!(
        left,
        std::slice::from_ref(&run_volume),
        "the active run's volume is kept"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        volumes(&app),
        std::slice::from_ref(&run_volume),
        "still kept after more sweeps"
    );

    // Canceled while blocked: no finish tells the runner the run ended; the sweep does.
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", run.id), &json!({}))
        .await;
    assert!(r.status().is_success(), "cancel: {}", r.status());
    assert_eq!(
        app.wait_run(run.id, LIMIT).await.status,
        RunStatus::Canceled
    );
    volumes_until(
        &app,
        "the canceled run's volume stays",
        <[String]>::is_empty,
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn active_runs_answers_only_a_registered_runner_and_only_for_runs_not_ended() {
    let app = spawn_with(crate::helpers::no_runner()).await;
    let url = format!("{}/internal/v1/runners/active-runs", app.pipeline);
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!("jobs:\n  - {{ name: a, image: {img}, script: [echo a] }}\n"),
    )
    .await;
    let queued = app.trigger("r", &json!({})).await.id;
    let canceled = app.trigger("r", &json!({})).await.id;
    let r = app
        .post_json(&format!("/pipelines/runs/{canceled}/cancel"), &json!({}))
        .await;
    assert!(r.status().is_success(), "cancel: {}", r.status());
    let unknown = Uuid::now_v7();
    let ask = json!({"run_ids": [queued, canceled, unknown]});

    let r = app.http.post(&url).json(&ask).send().await.expect("POST");
    assert_eq!(r.status(), 401, "no runner token");
    let r = app
        .http
        .post(&url)
        .bearer_auth("not-a-runner.token")
        .json(&ask)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 401, "a wrong runner token");

    let reg: serde_json::Value = app
        .http
        .post(format!("{}/internal/v1/runners/register", app.pipeline))
        .json(&json!({"name": "sweeper", "capacity": 8, "engine": "docker"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("registration JSON");
    let token = reg["token"].as_str().expect("token").to_owned();
    let answer: serde_json::Value = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .json(&ask)
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("answer JSON");
    assert_eq!(answer, json!({"active": [queued]}), "only the queued run");

    let too_many: Vec<Uuid> = (0..1001).map(|_| Uuid::now_v7()).collect();
    let r = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({ "run_ids": too_many }))
        .send()
        .await
        .expect("POST");
    let (status, code, message) = crate::helpers::envelope(r).await;
    assert_eq!((status, code.as_str()), (422, "too_many_runs"), "{message}");
    app.shutdown().await;
}
