//! The `gitweave` CLI against the real stack: what README.md says its commands do and which
//! exit code they end with (`trigger --wait`, `summary`, `events --follow`).

use crate::helpers::{TestApp, bin, image, spawn_with};
use assert_cmd::assert::Assert;
use gitweave_api::public::Event;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

/// Runs `gitweave --url <gateway> ARGS…` to its end (off the runtime's thread: the stack
/// serves from it meanwhile).
async fn gitweave(app: &TestApp, args: &[&str]) -> Assert {
    let mut cmd = assert_cmd::Command::new(bin("gitweave"));
    cmd.env_remove("GITWEAVE_API_TOKEN")
        .env_remove("GITWEAVE_URL")
        .arg("--url")
        .arg(&app.gateway)
        .args(args)
        .timeout(Duration::from_secs(120));
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the CLI ran")
}

fn stdout(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// A template file, removed when dropped.
struct TemplateFile(PathBuf);

impl TemplateFile {
    fn new(stem: &str, yaml: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gitweave-cli-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("{stem}.yaml"));
        std::fs::write(&path, yaml).expect("write template");
        TemplateFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf8 path")
    }
}

impl Drop for TemplateFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The run id in `run <id> created`.
fn created_run(out: &str) -> Uuid {
    out.lines()
        .find_map(|l| l.strip_prefix("run ")?.strip_suffix(" created"))
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a `run <id> created` line in {out:?}"))
}

#[tokio::test]
async fn trigger_wait_and_summary_exit_with_the_runs_result() {
    let app = spawn_with(Default::default()).await;
    let img = image();
    let ok = TemplateFile::new(
        "ok",
        &format!("jobs:\n  - name: hello\n    image: {img}\n    script: [\"echo hi\"]\n"),
    );
    let bad = TemplateFile::new(
        "bad",
        &format!("jobs:\n  - name: boom\n    image: {img}\n    script: [\"exit 3\"]\n"),
    );
    gitweave(&app, &["repo", "shop"]).await.success();
    gitweave(&app, &["repo", "broken"]).await.success();
    let pushed = gitweave(&app, &["templates", "push", ok.arg()])
        .await
        .success();
    assert!(
        stdout(&pushed).starts_with("template ok version 1 jobs hello"),
        "{}",
        stdout(&pushed)
    );
    gitweave(&app, &["templates", "push", "--name", "bad", bad.arg()])
        .await
        .success();
    gitweave(&app, &["attach", "shop", "ok"]).await.success();
    gitweave(&app, &["attach", "broken", "bad"]).await.success();

    // A run that succeeds: 0, and the final state on stdout.
    let good = gitweave(&app, &["trigger", "shop", "--wait"]).await.code(0);
    let out = stdout(&good);
    let good_run = created_run(&out);
    assert!(out.contains(&format!("run {good_run} success")), "{out}");
    assert_eq!(app.run(good_run).await.status.as_str(), "success");

    // A run that fails: 1 (not 2, which is for the CLI's own errors).
    let failed = gitweave(&app, &["trigger", "broken", "--wait"])
        .await
        .code(1);
    let out = stdout(&failed);
    let failed_run = created_run(&out);
    assert!(out.contains(&format!("run {failed_run} failed")), "{out}");
    assert!(out.contains("bad/boom exit 3 [exit_code]"), "{out}");

    // No such repo: the API's message, exit 2, no run.
    let missing = gitweave(&app, &["trigger", "nope", "--wait"]).await.code(2);
    let err = String::from_utf8_lossy(&missing.get_output().stderr).into_owned();
    assert!(err.starts_with("gitweave: 404 Not Found: "), "{err}");

    // summary, text: the outcome and the exit code of the run.
    let text = stdout(
        &gitweave(&app, &["summary", &good_run.to_string()])
            .await
            .code(0),
    );
    assert!(text.contains(&format!("Run Summary: {good_run}")), "{text}");
    assert!(text.contains("Status: ✓ SUCCESS"), "{text}");
    assert!(
        text.contains("Jobs: 1 total (1 succeeded, 0 failed, 0 skipped, 0 canceled)"),
        "{text}"
    );
    let text = stdout(
        &gitweave(&app, &["summary", &failed_run.to_string()])
            .await
            .code(1),
    );
    assert!(text.contains("Status: ✗ FAILED"), "{text}");
    assert!(text.contains("✗ bad/boom"), "{text}");
    assert!(
        text.contains("Error: exit_code (exit 3), attempt 1"),
        "{text}"
    );

    // summary --json: the same facts, as JSON.
    let json = stdout(
        &gitweave(&app, &["summary", &failed_run.to_string(), "--json"])
            .await
            .code(1),
    );
    let v: Value = serde_json::from_str(&json).expect("summary JSON");
    assert_eq!(v["run_id"], failed_run.to_string(), "{v}");
    assert_eq!(v["repo"], "broken");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["jobs"]["total"], 1);
    assert_eq!(v["jobs"]["failed"], 1);
    assert_eq!(v["retries"], 0);
    assert_eq!(v["per_job"][0]["name"], "bad/boom");
    assert_eq!(v["per_job"][0]["exit_code"], 3);
    assert_eq!(v["per_job"][0]["error_class"], "exit_code");
    assert!(v["duration_s"].as_f64().is_some(), "{v}");
    app.shutdown().await;
}

#[tokio::test]
async fn repo_without_flags_keeps_what_is_stored() {
    let app = spawn_with(crate::helpers::no_runner()).await;
    let url = "https://git.example.com/shop.git";
    gitweave(
        &app,
        &[
            "repo",
            "shop",
            "--clone-url",
            url,
            "--default-branch",
            "dev",
        ],
    )
    .await
    .success();
    // Absent flags are absent fields, not nulls that would clear the stored values.
    let shown = stdout(&gitweave(&app, &["repo", "shop"]).await.success());
    let v: Value = serde_json::from_str(&shown).expect("repo JSON");
    assert_eq!(v["clone_url"], url, "{v}");
    assert_eq!(v["default_branch"], "dev", "{v}");
    let stored = app.get_json("/repos/shop").await;
    assert_eq!(stored["clone_url"], url, "{stored}");
    app.shutdown().await;
}

#[tokio::test]
async fn events_follow_prints_the_events_until_the_run_ends() {
    let app = spawn_with(Default::default()).await;
    app.repo_with(
        "shop",
        "slow",
        &format!(
            "jobs:\n  - name: wait\n    image: {}\n    script: [\"sleep 2\", \"echo done\"]\n",
            image()
        ),
    )
    .await;
    let run = app.trigger("shop", &serde_json::json!({})).await;
    assert!(
        !app.run(run.id).await.status.is_terminal(),
        "the run must still go on when the CLI starts following"
    );
    let followed = gitweave(&app, &["events", &run.id.to_string(), "--follow"])
        .await
        .code(0);
    let out = stdout(&followed);
    let events: Vec<Event> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    // Every stored event, in order, ending with the run's end: nothing left to wait for.
    let stored = app.events(run.id).await;
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        "{out}"
    );
    assert_eq!(
        events.first().map(|e| e.event_type.as_str()),
        Some("run.created")
    );
    assert_eq!(
        events.last().map(|e| e.event_type.as_str()),
        Some("run.completed")
    );
    assert!(app.run(run.id).await.status.is_terminal());

    // --tail without --follow: only the last N stored events.
    let tail = stdout(
        &gitweave(&app, &["events", &run.id.to_string(), "--tail", "2"])
            .await
            .code(0),
    );
    let seqs: Vec<i64> = tail
        .lines()
        .map(|l| serde_json::from_str::<Event>(l).expect("event").seq)
        .collect();
    let last_two: Vec<i64> = stored.iter().rev().take(2).rev().map(|e| e.seq).collect();
    assert_eq!(seqs, last_two, "{tail}");
    app.shutdown().await;
}
