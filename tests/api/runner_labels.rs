//! Runner labels, `runs_on`, the engine rule and capacity (SPEC §13), enforced by pipeline-svc
//! in the claim: runners driven by hand over the runner protocol, and a real runner-svc
//! process started with `RUNNER_LABELS`.

use crate::hand::{claim_within, finish, register, token};
use crate::helpers::{image, no_runner, spawn_with};
use crate::procs::runner_process_with;
use gitweave_api::runner::Assignment;
use gitweave_model::status::{JobStatus, RunStatus};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn a_job_goes_only_to_a_runner_with_every_label_it_asks_for() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!("jobs:\n  - {{ name: a, image: {img}, runs_on: {{zone: a, gpu: 'true'}}, script: [x] }}\n"),
    )
    .await;
    let plain = token(
        &app,
        json!({"name": "plain", "capacity": 4, "engine": "docker"}),
    )
    .await;
    let half = token(
        &app,
        json!({"name": "half", "capacity": 4, "engine": "docker", "labels": {"zone": "a"}}),
    )
    .await;
    let both = token(
        &app,
        json!({"name": "both", "capacity": 4, "engine": "docker", "labels": {"zone": "a", "gpu": "true"}}),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    assert!(claim_within(&app, &plain, 300).await.is_none(), "no labels");
    assert!(
        claim_within(&app, &half, 300).await.is_none(),
        "zone=a but no gpu"
    );
    let a = claim_within(&app, &both, 2_000).await.expect("every label");
    assert_eq!(a.run_id, run.id);

    // `runner` is an implicit label: a job may pin a runner by name.
    app.template_ok(
        "t",
        &format!(
            "jobs:\n  - {{ name: a, image: {img}, runs_on: {{runner: half}}, script: [x] }}\n"
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    assert!(claim_within(&app, &both, 300).await.is_none());
    let a = claim_within(&app, &half, 2_000)
        .await
        .expect("pinned by name");
    assert_eq!(a.run_id, run.id);
    app.shutdown().await;
}

#[tokio::test]
async fn a_shell_runner_takes_only_jobs_that_ask_for_the_shell_engine() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    // `end` makes it a DAG, so both others are runnable at once. A job with no image is
    // accepted (PIPELINE_REQUIRE_IMAGE is on) when it asks for shell.
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: boxed, image: {img}, script: [x] }}\n  - {{ name: host, runs_on: {{engine: shell}}, script: [x] }}\n  - {{ name: end, image: {img}, script: [x], needs: [boxed, host] }}\n"
        ),
    )
    .await;
    let r = app
        .put_template("noimage", "jobs:\n  - { name: a, script: [x] }\n")
        .await;
    assert_eq!(r.status(), 422, "no image and no engine: shell");
    let shell = token(
        &app,
        json!({"name": "sh", "capacity": 4, "engine": "shell"}),
    )
    .await;
    let docker = token(
        &app,
        json!({"name": "dk", "capacity": 4, "engine": "docker"}),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let on_shell = claim_within(&app, &shell, 2_000)
        .await
        .expect("the shell job");
    assert!(
        claim_within(&app, &shell, 300).await.is_none(),
        "never the job with an image"
    );
    let on_docker = claim_within(&app, &docker, 2_000)
        .await
        .expect("the docker job");
    assert!(claim_within(&app, &docker, 300).await.is_none());
    let view = app.run(run.id).await;
    let name_of = |id| {
        view.jobs
            .iter()
            .find(|j| j.id == id)
            .map(|j| j.name.clone())
            .unwrap_or_default()
    };
    assert_eq!(name_of(on_shell.job_id), "t/host");
    assert_eq!(name_of(on_docker.job_id), "t/boxed");
    app.shutdown().await;
}

#[tokio::test]
async fn a_runner_never_holds_more_jobs_than_its_registered_capacity() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    // Six jobs runnable at once (`end` makes it a DAG).
    let jobs: String = (0..6)
        .map(|i| format!("  - {{ name: j{i}, image: {img}, script: [x] }}\n"))
        .collect();
    let needs: Vec<String> = (0..6).map(|i| format!("j{i}")).collect();
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n{jobs}  - {{ name: end, image: {img}, script: [x], needs: [{}] }}\n",
            needs.join(", ")
        ),
    )
    .await;
    let two = token(
        &app,
        json!({"name": "two", "capacity": 2, "engine": "docker"}),
    )
    .await;
    app.trigger("r", &json!({})).await;
    // Five claims at once for two slots: exactly two get a job.
    let claims = (0..5).map(|_| claim_within(&app, &two, 1_500));
    let got: Vec<Assignment> = futures::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        claim_within(&app, &two, 300).await.is_none(),
        "both slots held"
    );
    // A finished job frees its slot.
    finish(&app, &two, &got[0]).await;
    assert!(claim_within(&app, &two, 2_000).await.is_some());
    assert!(claim_within(&app, &two, 300).await.is_none());
    app.shutdown().await;
}

#[tokio::test]
async fn a_registration_with_bad_labels_is_refused_naming_them() {
    let app = spawn_with(no_runner()).await;
    for (body, says) in [
        (
            json!({"name": "x", "capacity": 1, "engine": "docker", "labels": {"engine": "shell"}}),
            "set by GitWeave",
        ),
        (
            json!({"name": "x", "capacity": 1, "engine": "docker", "labels": {"Zone": "a"}}),
            "label key",
        ),
        (
            json!({"name": "x", "capacity": 1, "engine": "docker", "labels": {"zone": "a b"}}),
            "value of label zone",
        ),
        (
            json!({"name": "x", "capacity": 1, "engine": "podman"}),
            "engine must be one of docker, shell",
        ),
    ] {
        let (status, code, message) = crate::helpers::envelope(register(&app, body).await).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "invalid_runner"),
            "{message}"
        );
        assert!(message.contains(says), "{message}");
    }
    let r = app
        .put_template(
            "bad",
            &format!(
                "jobs:\n  - {{ name: a, image: {}, runs_on: {{engine: podman}}, script: [x] }}\n",
                image()
            ),
        )
        .await;
    assert_eq!(r.status(), 422);
    let text = r.text().await.unwrap_or_default();
    assert!(
        text.contains("runs_on.engine must be one of docker, shell"),
        "{text}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_real_runner_with_runner_labels_runs_what_matches_and_leaves_the_rest_queued() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: here, image: {img}, runs_on: {{zone: a}}, script: [echo here] }}\n  - {{ name: elsewhere, image: {img}, runs_on: {{zone: b}}, script: [echo there] }}\n"
        ),
    )
    .await;
    let name = format!("labels-{}", uuid::Uuid::new_v4().simple());
    let runner = runner_process_with(
        app.pipeline_url(),
        &name,
        &format!("{name}-"),
        &[("RUNNER_LABELS", "zone=a, pool=ci")],
    );
    let run = app.trigger("r", &json!({})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let view = app.run(run.id).await;
        let status = |n: &str| {
            view.jobs
                .iter()
                .find(|j| j.name == n)
                .map(|j| j.status)
                .expect("job")
        };
        if status("t/here") == JobStatus::Success {
            assert_eq!(status("t/elsewhere"), JobStatus::Queued, "{view:#?}");
            assert_eq!(view.status, RunStatus::Running);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    runner.terminate().await;
    // The run never ends (`elsewhere` has no runner), so the runner keeps its workspace
    // volume, as it should: the test removes it.
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker volume ls -q | grep '^{name}-' | xargs -r docker volume rm -f"
        ))
        .output();
    app.shutdown().await;
}

#[tokio::test]
async fn get_runners_shows_each_live_registration_with_its_labels_load_and_status() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!("jobs:\n  - {{ name: a, image: {img}, script: [x] }}\n"),
    )
    .await;
    let first = token(
        &app,
        json!({"name": "fleet-1", "capacity": 3, "engine": "docker", "labels": {"zone": "a"}, "os": "linux", "arch": "x86_64", "host_id": "host-a"}),
    )
    .await;
    app.trigger("r", &json!({})).await;
    claim_within(&app, &first, 2_000).await.expect("a job");
    let list = app.get_json("/runners").await;
    let runners = list["runners"].as_array().expect("runners");
    let me = runners
        .iter()
        .find(|r| r["name"] == "fleet-1")
        .expect("listed");
    assert_eq!(me["host"], "host-a");
    assert_eq!(
        me["labels"],
        json!({"arch": "x86_64", "engine": "docker", "os": "linux", "runner": "fleet-1", "zone": "a"})
    );
    assert_eq!(
        (me["capacity"].as_i64(), me["busy"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(me["status"], "online");
    assert!(me["last_seen_at"].is_string());
    // A new registration of the name replaces the old one in the list.
    token(
        &app,
        json!({"name": "fleet-1", "capacity": 1, "engine": "docker"}),
    )
    .await;
    let list = app.get_json("/runners").await;
    let same: Vec<&Value> = list["runners"]
        .as_array()
        .expect("runners")
        .iter()
        .filter(|r| r["name"] == "fleet-1")
        .collect();
    assert_eq!(same.len(), 1, "{list}");
    assert_eq!(same[0]["capacity"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_queued_job_says_why_it_waits_and_the_reason_follows_the_fleet() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    app.repo_with(
        "r",
        "t",
        &format!(
            "jobs:\n  - {{ name: gpu, image: {img}, runs_on: {{gpu: 'true'}}, script: [x] }}\n  - {{ name: after, image: {img}, script: [x], needs: [gpu] }}\n  - {{ name: ship, image: {img}, script: [x], when: manual, needs: [after] }}\n"
        ),
    )
    .await;
    let run = app.trigger("r", &json!({})).await;
    let waiting = |view: &Value, job: &str| {
        view["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["name"] == job)
            .map(|j| j["waiting"].clone())
            .expect("job")
    };
    let path = format!("/pipelines/runs/{}", run.id);
    let view = app.get_json(&path).await;
    assert_eq!(waiting(&view, "t/gpu")["reason"], "no_runner", "{view}");
    assert!(
        waiting(&view, "t/gpu")["message"]
            .as_str()
            .is_some_and(|m| m.contains("no runner is online")),
        "{view}"
    );
    assert_eq!(waiting(&view, "t/after")["reason"], "needs");
    assert_eq!(
        waiting(&view, "t/after")["message"],
        "waiting for t/gpu to finish"
    );

    // A runner without the label: still no_runner, and the message names it.
    let plain = token(
        &app,
        json!({"name": "plain", "capacity": 1, "engine": "docker"}),
    )
    .await;
    assert!(claim_within(&app, &plain, 200).await.is_none());
    let view = app.get_json(&path).await;
    let w = waiting(&view, "t/gpu");
    assert_eq!(w["reason"], "no_runner");
    let m = w["message"].as_str().expect("message");
    assert!(
        m.contains("gpu=true") && m.contains("plain engine=docker"),
        "{m}"
    );

    // A runner with the label but full: capacity.
    let gpu = token(
        &app,
        json!({"name": "gpu-box", "capacity": 1, "engine": "docker", "labels": {"gpu": "true"}}),
    )
    .await;
    app.repo_with(
        "other",
        "o",
        &format!(
            "jobs:\n  - {{ name: hog, image: {img}, runs_on: {{gpu: 'true'}}, script: [x] }}\n"
        ),
    )
    .await;
    // Both runs' gpu jobs are due; the runner takes the older one and is then full.
    let other = app.trigger("other", &json!({})).await;
    let taken = claim_within(&app, &gpu, 2_000).await.expect("one gpu job");
    assert_eq!(taken.run_id, run.id);
    let view = app.get_json(&format!("/pipelines/runs/{}", other.id)).await;
    let w = waiting(&view, "o/hog");
    assert_eq!(w["reason"], "capacity", "{view}");
    assert!(
        w["message"].as_str().is_some_and(|m| m.contains("gpu-box")),
        "{w}"
    );
    // The job view says the same.
    let job_id = view["jobs"][0]["id"].as_str().expect("id").to_owned();
    let job = app.get_json(&format!("/jobs/{job_id}")).await;
    assert_eq!(job["waiting"]["reason"], "capacity", "{job}");

    // The running job waits for nothing; once it and `after` are done, `ship` waits for approval.
    finish(&app, &gpu, &taken).await;
    let after = claim_within(&app, &plain, 2_000).await.expect("after");
    finish(&app, &plain, &after).await;
    let view = app.get_json(&path).await;
    assert_eq!(waiting(&view, "t/ship")["reason"], "approval", "{view}");
    assert!(waiting(&view, "t/gpu").is_null());
    app.shutdown().await;
}

/// The claim walks the due jobs oldest first until one the runner may take: a runner finds
/// its job behind many it cannot take, and runners that can take the old ones get them in
/// pipeline order (bench/FINDINGS.md #29).
#[tokio::test]
async fn a_claim_finds_its_job_behind_many_it_cannot_take_and_keeps_the_queue_order() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    // 30 parallel zone=a jobs (`end` makes the template a DAG), triggered first.
    let mut many = String::from("jobs:\n");
    for i in 0..30 {
        many.push_str(&format!(
            "  - {{ name: a{i:02}, image: {img}, runs_on: {{zone: a}}, script: [x] }}\n"
        ));
    }
    let all: Vec<String> = (0..30).map(|i| format!("a{i:02}")).collect();
    many.push_str(&format!(
        "  - {{ name: end, image: {img}, script: [x], needs: [{}] }}\n",
        all.join(", ")
    ));
    app.repo_with("old", "many", &many).await;
    app.repo_with(
        "new",
        "one",
        &format!("jobs:\n  - {{ name: b, image: {img}, runs_on: {{zone: b}}, script: [x] }}\n"),
    )
    .await;
    let old = app.trigger("old", &json!({})).await;
    let new = app.trigger("new", &json!({})).await;
    let zone_b = token(
        &app,
        json!({"name": "zb", "capacity": 1, "engine": "docker", "labels": {"zone": "b"}}),
    )
    .await;
    let zone_a = token(
        &app,
        json!({"name": "za", "capacity": 30, "engine": "docker", "labels": {"zone": "a"}}),
    )
    .await;
    let b = claim_within(&app, &zone_b, 2_000)
        .await
        .expect("the zone=b job behind 30 zone=a ones");
    assert_eq!((b.run_id, b.name.as_str()), (new.id, "one/b"));
    for want in &all[..3] {
        let a = claim_within(&app, &zone_a, 2_000)
            .await
            .expect("a zone=a job");
        assert_eq!(a.run_id, old.id);
        assert_eq!(a.name, format!("many/{want}"), "pipeline order");
    }
    app.shutdown().await;
}
