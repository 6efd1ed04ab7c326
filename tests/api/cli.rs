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
pub(crate) async fn gitweave(app: &TestApp, args: &[&str]) -> Assert {
    gitweave_in(app, None, args).await
}

/// [`gitweave`] run in `dir` (where `git remote` names the current repo).
pub(crate) async fn gitweave_in(
    app: &TestApp,
    dir: Option<&std::path::Path>,
    args: &[&str],
) -> Assert {
    let mut cmd = assert_cmd::Command::new(bin("gitweave"));
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.env_remove("GITWEAVE_API_TOKEN")
        .env_remove("GITWEAVE_URL")
        .env_remove("GITWEAVE_REPO")
        .env("NO_COLOR", "1")
        .arg("--url")
        .arg(&app.gateway)
        .args(args)
        .timeout(Duration::from_secs(120));
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the CLI ran")
}

pub(crate) fn stdout(a: &Assert) -> String {
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

/// The short id in `run <short> created (…)`.
fn created_short(out: &str) -> String {
    out.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("run ")?;
            let (id, tail) = rest.split_once(' ')?;
            tail.starts_with("created").then(|| id.to_owned())
        })
        .unwrap_or_else(|| panic!("a `run <short> created` line in {out:?}"))
}

/// The run of `run <short> created`, resolved by the server from the short id.
async fn created_run(app: &TestApp, out: &str) -> Uuid {
    let short = created_short(out);
    assert_eq!(short.len(), 8, "{out}");
    let v = app.get_json(&format!("/pipelines/runs/{short}")).await;
    let run: gitweave_api::public::Run = serde_json::from_value(v).expect("a run");
    assert!(
        run.id.simple().to_string().ends_with(&short),
        "{short} {}",
        run.id
    );
    run.id
}

/// The short id printed for `id`.
fn short(id: Uuid) -> String {
    gitweave_model::short_id::short(id)
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
    let good_run = created_run(&app, &out).await;
    assert!(
        out.contains(&format!("run {} success", short(good_run))),
        "{out}"
    );
    assert_eq!(app.run(good_run).await.status.as_str(), "success");

    // A run that fails: 1 (not 2, which is for the CLI's own errors).
    let failed = gitweave(&app, &["trigger", "broken", "--wait"])
        .await
        .code(1);
    let out = stdout(&failed);
    let failed_run = created_run(&app, &out).await;
    assert!(
        out.contains(&format!("run {} failed", short(failed_run))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("✗  failed  bad/boom") && l.ends_with("exit 3 [exit_code]")),
        "{out}"
    );

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
    assert!(
        text.contains(&format!("Run Summary: {} ({good_run})", short(good_run))),
        "{text}"
    );
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
    let text = stdout(&gitweave(&app, &["repo", "shop"]).await.success());
    assert_eq!(
        text,
        format!("repo shop  default branch dev  clone url {url}\n")
    );
    let shown = stdout(&gitweave(&app, &["repo", "shop", "--json"]).await.success());
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

/// A git work tree whose `origin` names `repo` (never fetched: only `git remote get-url`).
fn git_dir_for(repo: &str) -> tempdir::Dir {
    let d = tempdir::Dir::new("gitweave-cli-git");
    let git = |args: &[&str]| {
        let s = std::process::Command::new("git")
            .args(args)
            .current_dir(&d.0)
            .output()
            .expect("git");
        assert!(s.status.success(), "git {args:?}: {s:?}");
    };
    git(&["init", "-q"]);
    git(&[
        "remote",
        "add",
        "origin",
        &format!("git@git.example.com:team/{repo}.git"),
    ]);
    d
}

mod tempdir {
    /// A temporary directory, removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new(stem: &str) -> Self {
            let p = std::env::temp_dir().join(format!("{stem}-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[tokio::test]
async fn short_ids_the_current_repos_latest_run_and_logs_by_job_name() {
    let app = spawn_with(Default::default()).await;
    let img = image();
    app.repo_with(
        "shop",
        "build",
        &format!(
            "jobs:\n  - name: hello\n    image: {img}\n    script: [\"echo hi-from-hello\"]\n  - name: lint\n    image: {img}\n    allow_failure: true\n    script: [\"exit 5\"]\n  - name: ship\n    image: {img}\n    when: manual\n    script: [\"echo shipped\"]\n"
        ),
    )
    .await;
    let commit = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    let run = app
        .trigger("shop", &serde_json::json!({ "commit": commit }))
        .await;
    let short_run = short(run.id);
    // Wait until the manual gate is reached (the run is blocked on it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.run(run.id).await.status.as_str() != "blocked" {
        assert!(tokio::time::Instant::now() < deadline, "run never blocked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = git_dir_for("shop");

    // status with no id: the latest run of the repo `origin` names; short ids in the table,
    // the allowed failure marked `!`.
    let st = gitweave_in(&app, Some(&dir.0), &["status"]).await.code(1);
    let text = stdout(&st);
    assert!(
        text.starts_with(&format!("run {short_run} blocked  shop main 4b825dc642cb")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("!  failed   build/lint")
            && l.contains("exit 5 [exit_code] (allowed to fail)")),
        "{text}"
    );
    for j in &run.jobs {
        assert!(text.contains(&short(j.id)), "{text}");
    }
    // The summary says the same: a warning, not a failure.
    let sum = stdout(&gitweave_in(&app, Some(&dir.0), &["summary"]).await.code(1));
    assert!(sum.contains("! build/lint"), "{sum}");
    assert!(
        sum.contains("Warnings (allowed to fail): build/lint"),
        "{sum}"
    );
    let v: Value = serde_json::from_str(&stdout(
        &gitweave_in(&app, Some(&dir.0), &["summary", "--json"])
            .await
            .code(1),
    ))
    .expect("summary JSON");
    assert_eq!(v["warnings"], serde_json::json!(["build/lint"]), "{v}");

    // runs: a table with the commit.
    let runs = stdout(&gitweave_in(&app, Some(&dir.0), &["runs"]).await.success());
    assert!(runs.starts_with("RUN "), "{runs}");
    assert!(
        runs.lines()
            .any(|l| l.starts_with(&short_run) && l.contains("4b825dc642cb")),
        "{runs}"
    );
    // Outside a git repo and with no --repo: exit 2 saying how to name it.
    let nogit = tempdir::Dir::new("gitweave-cli-nogit");
    let err = gitweave_in(&app, Some(&nogit.0), &["status"]).await.code(2);
    let msg = String::from_utf8_lossy(&err.get_output().stderr).into_owned();
    assert!(msg.contains("--repo or GITWEAVE_REPO"), "{msg}");
    // --repo wins over the directory.
    let st = gitweave_in(&app, Some(&nogit.0), &["status", "--repo", "shop"])
        .await
        .code(1);
    assert!(stdout(&st).starts_with(&format!("run {short_run} ")));

    // logs RUN JOB-NAME, by short run id and by the job's bare name or full name.
    for name in ["hello", "build/hello"] {
        let out = stdout(&gitweave(&app, &["logs", &short_run, name]).await.success());
        assert!(out.contains("hi-from-hello"), "{out}");
    }
    let err = gitweave(&app, &["logs", &short_run, "nope"]).await.code(2);
    let msg = String::from_utf8_lossy(&err.get_output().stderr).into_owned();
    assert!(
        msg.contains("has no job \"nope\"") && msg.contains("build/hello"),
        "{msg}"
    );

    // approve by the job's short id prints its new state.
    let ship = run
        .jobs
        .iter()
        .find(|j| j.name == "build/ship")
        .expect("ship");
    let out = stdout(
        &gitweave(&app, &["approve", &short(ship.id), "--reason", "ok"])
            .await
            .success(),
    );
    // Released by the approval: queued, unless the runner took it already.
    let state = out
        .strip_prefix(&format!("job {} build/ship approved: now ", short(ship.id)))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        ["queued\n", "running\n", "success\n"].contains(&state),
        "{out}"
    );
    let ended = app.wait_run(run.id, Duration::from_secs(60)).await;
    // The allowed failure does not fail the run.
    assert_eq!(ended.status.as_str(), "success");
    let st = gitweave(&app, &["status", &short_run]).await.code(0);
    assert!(
        stdout(&st).contains("✓  success  build/ship"),
        "{}",
        stdout(&st)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn runners_lists_the_stacks_runner_as_a_table_and_as_json() {
    let app = spawn_with(Default::default()).await;
    // The runner registers on its own after start: wait until the API lists it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = app.get_json("/runners").await;
        let listed = list["runners"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r["name"] == app.runner_name.as_str()));
        if listed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never registered: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = stdout(&gitweave(&app, &["runners"]).await.success());
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "HOST", "LABELS", "BUSY/CAP", "STATUS", "LAST", "SEEN"
        ],
        "{out}"
    );
    let row = lines
        .find(|l| l.starts_with(&format!("{} ", app.runner_name)))
        .unwrap_or_else(|| panic!("a row for {} in {out}", app.runner_name));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(
        cells[2].contains(&format!("runner={}", app.runner_name))
            && cells[2].contains("engine=docker"),
        "{row}"
    );
    assert_eq!(cells[3], "0/1", "{row}");
    assert_eq!(cells[4], "online", "{row}");

    let json: Value = serde_json::from_str(&stdout(
        &gitweave(&app, &["--json", "runners"]).await.success(),
    ))
    .expect("JSON");
    let me = json["runners"]
        .as_array()
        .expect("runners")
        .iter()
        .find(|r| r["name"] == app.runner_name.as_str())
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(
        (
            me["capacity"].as_i64(),
            me["busy"].as_i64(),
            me["status"].as_str()
        ),
        (Some(1), Some(0), Some("online")),
        "{me}"
    );
    assert_eq!(me["labels"]["runner"], app.runner_name.as_str());
    // A docker runner's host is its Docker engine's id (SPEC §13), when RUNNER_HOST_ID is unset.
    let engine_id = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ID}}"])
        .output()
        .expect("docker info");
    let engine_id = String::from_utf8_lossy(&engine_id.stdout).trim().to_owned();
    assert!(!engine_id.is_empty(), "docker info gave no ID");
    assert_eq!(me["host"], engine_id.as_str(), "{me}");
    assert_eq!(cells[1], engine_id, "{row}");
    app.shutdown().await;
}
