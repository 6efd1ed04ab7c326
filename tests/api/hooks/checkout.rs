//! The checkout of the pushed commit into the run's workspace, and `git push` to a local bare
//! repository.

use super::*;
use crate::helpers::{EngineKind, spawn_with};
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus, Trigger};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use uuid::Uuid;

pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("gitweave-hooks-{name}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository whose `main` has two commits: the older one has `old.txt`, the newer one
/// (the branch head) removed it. Returns (older, newer).
pub(super) fn two_commits(dir: &Path) -> (String, String) {
    git(dir, &["init", "-q"]);
    std::fs::write(dir.join("old.txt"), "only in the older commit\n").expect("write");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "older"]);
    let older = git(dir, &["rev-parse", "HEAD"]);
    std::fs::remove_file(dir.join("old.txt")).expect("rm");
    std::fs::write(dir.join("new.txt"), "newer\n").expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "newer"]);
    (older, git(dir, &["rev-parse", "HEAD"]))
}

/// Runs a program that talks to the stack without blocking the test's runtime (the services
/// run on it: a blocking wait would deadlock them).
async fn output_of(cmd: &mut tokio::process::Command) -> std::process::Output {
    cmd.output().await.expect("the program runs")
}

pub(super) fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("utf8 log")
}

#[tokio::test]
async fn a_push_runs_on_exactly_the_pushed_commit_with_the_ref_as_data_in_docker() {
    helper_image().await;
    let app = spawn_with(Options::default()).await;
    let origin = TempDir::new("origin");
    let (older, newer) = two_commits(&origin.0);
    let img = image();
    repo_with(
        &app,
        "co",
        json!({ "webhook_secret": SECRET, "clone_url": format!("file://{}", origin.0.display()) }),
        &format!(
            r#"jobs:
  - name: first
    image: {img}
    script:
      - cat old.txt
      - test ! -e new.txt
      - echo "HEAD=$(cat .git/HEAD)"
      - echo "REF=$GITWEAVE_REF"
      - echo artifact > left-by-first
  - name: second
    image: {img}
    script:
      - cat left-by-first
      - echo "HEAD=$(cat .git/HEAD)"
"#
        ),
    )
    .await;
    // A push to a branch named like a shell injection, at the older commit (not the head).
    let body = serde_json::to_vec(&json!({
        "ref": HOSTILE_REF,
        "before": newer,
        "after": older,
        "repository": { "name": "co" },
    }))
    .expect("json");
    let (status, v) = json_of(deliver(&app, "co", "gitea", "push", "co-1", &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let run: Run = serde_json::from_value(v).expect("run");
    assert_eq!(run.git_ref, HOSTILE_REF);
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let first = text(app.raw_log(run.jobs[0].id).await);
    assert!(
        first.starts_with(&format!(
            "gitweave: checking out {older} ({HOSTILE_REF}) from file://"
        )),
        "the clone output is in the first job's log: {first}"
    );
    assert!(
        first.contains(&format!("gitweave: HEAD is now at {older} older")),
        "{first}"
    );
    assert!(first.contains("only in the older commit"), "{first}");
    assert!(first.contains(&format!("HEAD={older}")), "{first}");
    assert!(first.contains(&format!("REF={HOSTILE_REF}")), "{first}");
    assert!(
        !first.lines().any(|l| l == "hello"),
        "the ref never ran: {first}"
    );
    let second = text(app.raw_log(run.jobs[1].id).await);
    assert!(second.contains("already holds"), "{second}");
    assert!(
        second.contains("artifact"),
        "the workspace is kept between jobs: {second}"
    );
    assert!(second.contains(&format!("HEAD={older}")), "{second}");
    assert_eq!(
        app.settled_containers().await,
        Vec::<String>::new(),
        "helpers removed"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_api_trigger_with_a_commit_checks_it_out_on_the_shell_engine() {
    let app = spawn_with(Options {
        runner: Some(EngineKind::Shell),
        ..Options::default()
    })
    .await;
    let origin = TempDir::new("origin-shell");
    let (older, _newer) = two_commits(&origin.0);
    repo_with(
        &app,
        "sh",
        json!({ "clone_url": origin.0.display().to_string() }),
        &format!(
            "jobs:\n  - name: check\n    image: {}\n    runs_on: {{engine: shell}}\n    script:\n      - cat old.txt\n      - git rev-parse HEAD\n",
            image()
        ),
    )
    .await;
    let run = app
        .trigger("sh", &json!({ "ref": "refs/heads/main", "commit": older }))
        .await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let log = text(app.raw_log(run.jobs[0].id).await);
    assert!(log.contains("only in the older commit"), "{log}");
    assert!(
        log.contains(&format!("$ git rev-parse HEAD\n{older}\n")),
        "{log}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_clone_failure_fails_the_run_with_a_reason_and_a_class() {
    helper_image().await;
    // The runner's own failure: pipeline-svc does not read the (unreachable) repo first
    // (with the repo file on, such a push is a failed run without jobs: hooks::repo_file).
    let app = spawn_with(Options {
        pipeline: Some(crate::helpers::no_repo_file),
        ..Options::default()
    })
    .await;
    let origin = TempDir::new("origin-fail");
    let (older, _) = two_commits(&origin.0);
    let yaml = format!(
        "jobs:\n  - name: a\n    image: {img}\n    script: [\"echo ran-a\"]\n  - name: b\n    image: {img}\n    script: [\"echo ran-b\"]\n",
        img = image()
    );
    let missing_commit = "0123456789abcdef0123456789abcdef01234567";
    let cases = [
        // A commit the repository does not have.
        (
            format!("file://{}", origin.0.display()),
            missing_commit.to_owned(),
            "is not in",
        ),
        // A server that does not answer.
        (
            "http://127.0.0.1:9/nothing.git".to_owned(),
            older.clone(),
            "unable to access",
        ),
    ];
    // A local repository that does not exist is refused before it is stored (SPEC §15).
    let r = app
        .put_json(
            "/repos/missing",
            &json!({ "clone_url": format!("file://{}/does-not-exist.git", origin.0.display()) }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for (i, (url, commit, said)) in cases.iter().enumerate() {
        let repo = format!("fail{i}");
        repo_with(
            &app,
            &repo,
            json!({ "webhook_secret": SECRET, "clone_url": url }),
            &yaml,
        )
        .await;
        let body = serde_json::to_vec(&json!({ "ref": "refs/heads/main", "after": commit }))
            .expect("json");
        let (status, v) = json_of(deliver(&app, &repo, "github", "push", "f", &body).await).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let run: Run = serde_json::from_value(v).expect("run");
        let run = app.wait_run(run.id, LIMIT).await;
        assert_eq!(run.status, RunStatus::Failed, "{url}: {run:#?}");
        let a = &run.jobs[0];
        assert_eq!(a.status, JobStatus::Failed);
        assert_eq!(
            a.error_class,
            Some(ErrorClass::ConfigError),
            "{url}: {run:#?}"
        );
        assert_eq!(a.exit_code, None, "the job's script never ran");
        assert_eq!(run.jobs[1].status, JobStatus::Skipped);
        let log = text(app.raw_log(a.id).await);
        assert!(log.contains(said), "{url}: {log}");
        assert!(
            log.contains(&format!("gitweave: checkout of {commit} from {url}")),
            "{log}"
        );
        assert!(!log.contains("ran-a"), "{log}");
        // The reason is in the job's events too.
        let events = app
            .get(&format!("/pipelines/runs/{}/events", run.id))
            .await
            .text()
            .await
            .expect("events");
        let failed = events
            .lines()
            .find(|l| l.contains("\"job.failed\""))
            .unwrap_or_else(|| panic!("a job.failed event: {events}"));
        assert!(
            failed.contains("config_error") && failed.contains("checkout of"),
            "{failed}"
        );
    }
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}

#[tokio::test]
async fn git_push_to_a_local_bare_repo_runs_the_pushed_commit() {
    helper_image().await;
    let app = spawn_with(Options::default()).await;
    let gitweave = crate::helpers::bin("gitweave");
    let tmp = TempDir::new("push");
    let bare = tmp.0.join("shop.git");
    git(
        &tmp.0,
        &["init", "-q", "--bare", bare.to_str().expect("utf8 path")],
    );
    app.template_ok(
        "build",
        &format!(
            "jobs:\n  - name: read\n    image: {}\n    script:\n      - cat hello.txt\n      - echo \"REF=$GITWEAVE_REF\"\n",
            image()
        ),
    )
    .await;

    // Install: creates the GitWeave repo with a new secret and clone_url = file://<bare>.
    let out = output_of(
        tokio::process::Command::new(&gitweave)
            .args(["--url", &app.gateway, "hook", "install", "--repo", "shop"])
            .arg(&bare),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    app.attach("shop", "build").await;
    let repo: Value = app.get("/repos/shop").await.json().await.expect("repo");
    assert_eq!(repo["has_webhook_secret"], true, "{repo}");
    let canonical = std::fs::canonicalize(&bare).expect("canonical");
    assert_eq!(repo["clone_url"], format!("file://{}", canonical.display()));
    // Installing again rewrites the hook (it is ours), a foreign hook needs --force; with
    // --json it says what it did as one JSON document.
    let again = output_of(
        tokio::process::Command::new(&gitweave)
            .args([
                "--url",
                &app.gateway,
                "--json",
                "hook",
                "install",
                "--repo",
                "shop",
            ])
            .arg(&bare),
    )
    .await;
    assert!(again.status.success(), "{again:?}");
    let said: Value = serde_json::from_slice(&again.stdout).expect("one JSON document");
    assert_eq!(
        said["hook"],
        canonical.join("hooks/post-receive").display().to_string()
    );
    assert_eq!(said["bare_repo"], canonical.display().to_string());
    assert_eq!(
        (&said["repo"], &said["url"], &said["configured"]),
        (&json!("shop"), &json!(app.gateway), &json!(true))
    );
    assert_eq!(said["clone_url"], format!("file://{}", canonical.display()));
    assert!(said.get("secret").is_none(), "{said}");

    // A plain git push.
    let work = tmp.0.join("work");
    git(
        &tmp.0,
        &["clone", "-q", bare.to_str().expect("utf8"), "work"],
    );
    std::fs::write(work.join("hello.txt"), "hello from the pushed commit\n").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let push = output_of(
        tokio::process::Command::new("git")
            .args(["push", "origin", "HEAD:refs/heads/main"])
            .current_dir(&work),
    )
    .await;
    let said = String::from_utf8_lossy(&push.stderr).into_owned();
    assert!(push.status.success(), "{said}");
    assert!(
        said.contains("gitweave: refs/heads/main"),
        "the pusher sees the run: {said}"
    );

    let runs = runs_of(&app, "shop").await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].trigger, Trigger::Push);
    assert_eq!(runs[0].git_ref, "refs/heads/main");
    assert_eq!(runs[0].commit.as_deref(), Some(sha.as_str()));
    let run = app.wait_run(runs[0].id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let log = text(app.raw_log(run.jobs[0].id).await);
    assert!(log.contains("hello from the pushed commit"), "{log}");

    // A branch named like a shell injection, and its deletion.
    let hostile = HOSTILE_REF.trim_start_matches("refs/heads/");
    let push = output_of(
        tokio::process::Command::new("git")
            .args(["push", "origin", &format!("HEAD:{HOSTILE_REF}")])
            .current_dir(&work),
    )
    .await;
    assert!(push.status.success(), "{push:?}");
    let runs = runs_of(&app, "shop").await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].git_ref, HOSTILE_REF, "{hostile}");
    let run = app.wait_run(runs[0].id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let log = text(app.raw_log(run.jobs[0].id).await);
    assert!(log.contains(&format!("REF={HOSTILE_REF}")), "{log}");
    assert!(!log.lines().any(|l| l == "hello"), "{log}");
    let delete = output_of(
        tokio::process::Command::new("git")
            .args(["push", "origin", "--delete", HOSTILE_REF])
            .current_dir(&work),
    )
    .await;
    let said = String::from_utf8_lossy(&delete.stderr).into_owned();
    assert!(delete.status.success(), "{said}");
    assert!(said.contains("was deleted"), "{said}");
    assert_eq!(
        runs_of(&app, "shop").await.len(),
        2,
        "a deletion makes no run"
    );

    // A foreign post-receive hook is kept unless --force.
    std::fs::write(bare.join("hooks/post-receive"), "#!/bin/sh\necho mine\n").expect("write");
    let out = output_of(
        tokio::process::Command::new(&gitweave)
            .args(["--url", &app.gateway, "hook", "install", "--repo", "shop"])
            .arg(&bare),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{out:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn jobs_starting_together_check_out_once() {
    helper_image().await;
    let app = spawn_with(Options {
        concurrency: 2,
        ..Options::default()
    })
    .await;
    let origin = TempDir::new("origin-parallel");
    let (older, _) = two_commits(&origin.0);
    let img = image();
    // `left` and `right` need nothing, so they start together on the runner's two slots.
    repo_with(
        &app,
        "par",
        json!({ "clone_url": format!("file://{}", origin.0.display()) }),
        &format!(
            r#"jobs:
  - name: left
    image: {img}
    script: ["cat old.txt"]
  - name: right
    image: {img}
    script: ["cat old.txt"]
  - name: after
    image: {img}
    needs: [left, right]
    script: ["cat .git/HEAD"]
"#
        ),
    )
    .await;
    let run = app
        .trigger("par", &json!({ "ref": "refs/heads/main", "commit": older }))
        .await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let mut fresh = 0;
    for job in &run.jobs {
        let log = text(app.raw_log(job.id).await);
        fresh += usize::from(log.contains("gitweave: checking out"));
        assert!(
            log.contains("only in the older commit") || log.contains(&older),
            "{}: {log}",
            job.name
        );
    }
    assert_eq!(fresh, 1, "one checkout per run, the others skip it");
    app.shutdown().await;
}
