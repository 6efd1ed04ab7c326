//! The pipeline in the repo (SPEC §9): `.gitweave.yml` read at the run's commit from a real
//! bare repository, includes, rules, `changes:` on the real diff, `[skip ci]`, broken files
//! as failed runs (push) or 422 (API), skips recorded with their delivery, and reruns that
//! run what the run ran.

use super::checkout::{TempDir, git};
use super::{SECRET, deliver, json_of, no_runner, runs_of};
use crate::helpers::{TestApp, envelope, image, spawn_with};
use gitweave_api::public::Run;
use gitweave_model::status::{RunStatus, Trigger};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

/// Writes `files`, commits with `message` on the current branch; returns the commit.
fn commit(dir: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (p, text) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

fn job(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: {}\n    script: [\"echo {name}\"]\n{extra}",
        image()
    )
}

fn names(run: &Run) -> Vec<String> {
    run.jobs.iter().map(|j| j.name.clone()).collect()
}

async fn repo_at(app: &TestApp, repo: &str, dir: &Path) {
    let r = app
        .put_json(
            &format!("/repos/{repo}"),
            &json!({ "clone_url": dir.display().to_string(), "webhook_secret": SECRET }),
        )
        .await;
    assert!(r.status().is_success(), "PUT repo: {}", r.status());
}

async fn push(
    app: &TestApp,
    repo: &str,
    delivery: &str,
    git_ref: &str,
    before: &str,
    after: &str,
) -> (StatusCode, Value) {
    let body = serde_json::to_vec(&json!({ "ref": git_ref, "before": before, "after": after }))
        .expect("json");
    json_of(deliver(app, repo, "github", "push", delivery, &body).await).await
}

const ZERO: &str = "0000000000000000000000000000000000000000";

#[tokio::test]
async fn the_file_at_the_commit_is_the_pipeline_and_the_run_records_its_blob() {
    let app = spawn_with(no_runner()).await;
    let origin = TempDir::new("file-at-commit");
    git(&origin.0, &["init", "-q"]);
    let old = commit(
        &origin.0,
        &[(".gitweave.yml", &format!("jobs:\n{}", job("old", "")))],
        "old",
    );
    let new = commit(
        &origin.0,
        &[(
            ".gitweave.yml",
            &format!(
                "jobs:\n{}{}",
                job("first", ""),
                job("second", "    needs: [first]\n")
            ),
        )],
        "new",
    );
    repo_at(&app, "rf", &origin.0).await;
    // An attached template does not run where the file does not include it.
    app.template_ok("ignored", &format!("jobs:\n{}", job("never", "")))
        .await;
    app.attach("rf", "ignored").await;

    let at_old = app.trigger("rf", &json!({ "commit": old })).await;
    assert_eq!(
        names(&at_old),
        ["pipeline/old"],
        "the file at the commit, not the head"
    );
    let blob = git(&origin.0, &["rev-parse", &format!("{old}:.gitweave.yml")]);
    let source = at_old.source.clone().expect("source");
    assert_eq!(source.file.expect("file").blob, blob);
    assert!(source.templates.is_empty());
    let head = app.trigger("rf", &json!({})).await;
    assert_eq!(head.commit.as_deref(), Some(new.as_str()));
    assert_eq!(names(&head), ["pipeline/first", "pipeline/second"]);
    // The view shows the source.
    let view = app.get_json(&format!("/pipelines/runs/{}", head.id)).await;
    assert_eq!(view["source"]["file"]["path"], ".gitweave.yml", "{view}");

    // A commit without the file: the attached templates, as before.
    git(&origin.0, &["rm", "-q", ".gitweave.yml"]);
    let bare = commit(&origin.0, &[], "no file");
    let r = app.trigger("rf", &json!({ "commit": bare })).await;
    assert_eq!(names(&r), ["ignored/never"]);
    assert_eq!(r.source.expect("source").templates[0].version, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_broken_file_is_a_422_for_the_api_and_a_failed_run_without_jobs_for_a_push() {
    let app = spawn_with(no_runner()).await;
    let origin = TempDir::new("broken");
    git(&origin.0, &["init", "-q"]);
    let bad = commit(
        &origin.0,
        &[(".gitweave.yml", "jobs:\n  - name: a\n    script: []\n")],
        "broken",
    );
    repo_at(&app, "broken", &origin.0).await;
    let (status, code, message) = envelope(
        app.post_json("/repos/broken/pipelines/run", &json!({ "commit": bad }))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "config_error"), "{message}");
    assert_eq!(
        message,
        ".gitweave.yml: jobs[0].script must not be empty at line 3 column 5"
    );
    assert!(runs_of(&app, "broken").await.is_empty(), "nothing stored");

    let (status, v) = push(&app, "broken", "b1", "refs/heads/main", ZERO, &bad).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let run: Run = serde_json::from_value(v.clone()).expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.jobs.is_empty());
    let error = run.error.expect("error");
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("config_error", message.as_str())
    );
    let events = app.events(run.id).await;
    let kinds: Vec<String> = events.iter().map(|e| e.event_type.to_string()).collect();
    assert_eq!(kinds, ["run.created", "run.state_changed", "run.completed"]);
    app.assert_replays(run.id).await;

    // A server that cannot be read: the API says why, a push is a failed run saying why.
    let r = app
        .put_json(
            "/repos/gone",
            &json!({ "clone_url": "http://127.0.0.1:9/gone.git", "webhook_secret": SECRET }),
        )
        .await;
    assert!(r.status().is_success());
    let (status, code, message) = envelope(
        app.post_json("/repos/gone/pipelines/run", &json!({ "commit": bad }))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (422, "repo_unreadable"),
        "{message}"
    );
    let (status, v) = push(&app, "gone", "g1", "refs/heads/main", ZERO, &bad).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "repo_unreadable", "{v}");
    app.shutdown().await;
}

#[tokio::test]
async fn includes_rules_changes_and_skip_ci_decide_what_runs_and_skips_are_recorded() {
    let app = spawn_with(no_runner()).await;
    app.template_ok(
        "build",
        &format!(
            "inputs:\n  profile: {{ required: true }}\njobs:\n  - name: compile\n    image: {}\n    script: [\"echo ${{{{ inputs.profile }}}}\"]\n",
            image()
        ),
    )
    .await;
    let origin = TempDir::new("rules");
    git(&origin.0, &["init", "-q"]);
    let file = format!(
        "include:\n  - template: build\n    inputs: {{ profile: release }}\nrules:\n  - event: [push, api]\n    branch: [main, \"release/*\"]\njobs:\n{}{}{}",
        job("test", ""),
        job(
            "deploy",
            "    rules:\n      - branch: [main]\n        changes: [\"src/**\"]\n"
        ),
        job("announce", "    needs: [deploy]\n"),
    );
    let first = commit(
        &origin.0,
        &[(".gitweave.yml", &file), ("docs/a.md", "a")],
        "first",
    );
    let docs = commit(&origin.0, &[("docs/b.md", "b")], "docs only");
    let src = commit(&origin.0, &[("src/main.rs", "fn main() {}")], "code");
    repo_at(&app, "rules", &origin.0).await;

    // A push of main changing only docs: deploy is left out, and announce (needs deploy).
    let (status, v) = push(&app, "rules", "r1", "refs/heads/main", &first, &docs).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let run: Run = serde_json::from_value(v).expect("run");
    assert_eq!(names(&run), ["build/compile", "pipeline/test"]);
    let source = run.source.expect("source");
    assert_eq!(source.templates[0].name, "build");
    // Changing src/: everything runs; the included template got its input.
    let (_, v) = push(&app, "rules", "r2", "refs/heads/main", &docs, &src).await;
    let run: Run = serde_json::from_value(v).expect("run");
    assert_eq!(
        names(&run),
        [
            "build/compile",
            "pipeline/test",
            "pipeline/deploy",
            "pipeline/announce"
        ]
    );

    // Another branch: the pipeline rules match nothing. 202 with the reason, recorded.
    git(&origin.0, &["checkout", "-q", "-b", "feature"]);
    let feature = commit(&origin.0, &[("src/x.rs", "x")], "feature work");
    let (status, v) = push(&app, "rules", "r3", "refs/heads/feature", ZERO, &feature).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "skipped");
    let reason = v["reason"].as_str().expect("reason").to_owned();
    assert!(
        reason.contains("no rule of .gitweave.yml matches a push event on branch feature"),
        "{reason}"
    );
    let mut db = sqlx::PgConnection::connect(&app.db_url).await.expect("db");
    let (answer, run_id): (Option<Value>, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT answer, run_id FROM webhook_deliveries WHERE delivery_id = 'rules/r3'",
    )
    .fetch_one(&mut db)
    .await
    .expect("the delivery is recorded");
    assert_eq!(answer, Some(v.clone()));
    assert_eq!(run_id, None);
    let (status, code, message) = envelope(
        app.post_json("/repos/rules/pipelines/run", &json!({ "ref": "feature" }))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (422, "no_matching_rule"),
        "{message}"
    );

    // [skip ci] in the head commit: no run, 202 with the reason.
    git(&origin.0, &["checkout", "-q", "main"]);
    let skip = commit(&origin.0, &[("src/y.rs", "y")], "tweak\n\n[skip ci]");
    let before = runs_of(&app, "rules").await.len();
    let (status, v) = push(&app, "rules", "r4", "refs/heads/main", &src, &skip).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert!(
        v["reason"].as_str().expect("reason").contains("skip CI"),
        "{v}"
    );
    assert_eq!(runs_of(&app, "rules").await.len(), before);

    // Neither file nor template: push 202, API 422 no_pipeline.
    let empty = TempDir::new("empty");
    git(&empty.0, &["init", "-q"]);
    let c = commit(&empty.0, &[("README", "x")], "nothing");
    repo_at(&app, "none", &empty.0).await;
    let (status, v) = push(&app, "none", "n1", "refs/heads/main", ZERO, &c).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert!(
        v["reason"]
            .as_str()
            .expect("reason")
            .contains("no .gitweave.yml"),
        "{v}"
    );
    let (status, code, _) =
        envelope(app.post_json("/repos/none/pipelines/run", &json!({})).await).await;
    assert_eq!((status, code.as_str()), (422, "no_pipeline"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_rerun_runs_what_the_run_ran_not_the_current_template() {
    let app = spawn_with(no_runner()).await;
    app.repo_with("rr", "t", &format!("jobs:\n{}", job("v1", "")))
        .await;
    let first = app.trigger("rr", &json!({})).await;
    app.template_ok("t", &format!("jobs:\n{}", job("v2", "")))
        .await;
    let rerun = app
        .post_json(&format!("/pipelines/runs/{}/rerun", first.id), &json!({}))
        .await;
    assert_eq!(rerun.status(), StatusCode::CREATED);
    let rerun: Run = rerun.json().await.expect("run");
    assert_eq!(rerun.trigger, Trigger::Rerun);
    assert_eq!(
        names(&rerun),
        ["t/v1"],
        "the recorded expansion, not version 2"
    );
    let source = rerun.source.expect("source");
    assert_eq!(
        (
            source.templates[0].name.as_str(),
            source.templates[0].version
        ),
        ("t", 1)
    );
    // A new trigger takes the current version.
    assert_eq!(names(&app.trigger("rr", &json!({})).await), ["t/v2"]);
    app.shutdown().await;
}

use sqlx::Connection as _;
