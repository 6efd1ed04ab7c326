//! The checkout cannot be turned against the runner's host (SPEC §15): git never runs what a
//! job planted in the workspace's `.git`, a local clone URL must be a git repository under
//! `RUNNER_LOCAL_REPO_ROOT`, and the docker helper mounts that repository read-only and
//! nothing else of the host.

use super::checkout::{TempDir, git, text, two_commits};
use super::{LIMIT, helper_image, image};
use crate::helpers::{EngineKind, Options, TestApp, fresh_database, spawn_on, spawn_with};
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Makes a repo whose clone URL is `url`, with one attached template. The URL is written to
/// the database directly: pipeline-svc may refuse some of these at `PUT /repos` (that is its
/// own check); these tests are about the runner's.
async fn repo_at(app: &TestApp, db: &str, repo: &str, url: &str, yaml: &str) {
    app.create_repo(repo).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db)
        .await
        .expect("connect");
    sqlx::query("UPDATE repos SET clone_url = $1 WHERE name = $2")
        .bind(url)
        .bind(repo)
        .execute(&mut conn)
        .await
        .expect("set clone_url");
    let template = format!("t-{repo}");
    app.template_ok(&template, yaml).await;
    app.attach(repo, &template).await;
}

/// Files a job leaves in the repository: `plant.sh` writes commands into the workspace's
/// `.git` (fsmonitor, hooks), `plant-more.sh` more of them (hooksPath, a URL rewrite to ssh
/// with an `sshCommand`, a `gitProxy`); both remove the marker an older runner kept there, so
/// such a runner would check out again. Every planted command touches `pwned-*` in the
/// workspace; `check.sh` prints `PWNED` if one ran.
fn planting_repo(dir: &Path) -> String {
    git(dir, &["init", "-q"]);
    std::fs::write(
        dir.join("plant.sh"),
        r#"set -eu
ws="$PWD"
rm -f .git/gitweave-checkout
mkdir -p .git/hooks
for h in post-checkout reference-transaction post-index-change pre-auto-gc; do
  printf '#!/bin/sh\ntouch "%s/pwned-hook-%s"\n' "$ws" "$h" > ".git/hooks/$h"
  chmod +x ".git/hooks/$h"
done
printf '[core]\n\tfsmonitor = touch %s/pwned-fsmonitor\n' "$ws" >> .git/config
echo planted
"#,
    )
    .expect("write");
    std::fs::write(
        dir.join("plant-more.sh"),
        r#"set -eu
ws="$PWD"
rm -f .git/gitweave-checkout
url=$(sed -n 's/^[[:space:]]*url = //p' .git/config | head -n 1)
mkdir -p "$ws/evil-hooks"
for h in post-checkout reference-transaction; do
  printf '#!/bin/sh\ntouch "%s/pwned-hookspath-%s"\n' "$ws" "$h" > "$ws/evil-hooks/$h"
  chmod +x "$ws/evil-hooks/$h"
done
cat >> .git/config <<EOF
[core]
	hooksPath = $ws/evil-hooks
	sshCommand = touch $ws/pwned-ssh-command
	gitProxy = touch $ws/pwned-git-proxy
[url "ssh://evil.invalid/x"]
	insteadOf = $url
EOF
echo planted more
"#,
    )
    .expect("write");
    std::fs::write(
        dir.join("check.sh"),
        r#"found=$(ls -a | grep '^pwned' || true)
if [ -n "$found" ]; then echo "PWNED:" $found; exit 1; fi
echo "clean: nothing planted ran"
"#,
    )
    .expect("write");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "planting"]);
    git(dir, &["rev-parse", "HEAD"])
}

async fn planted_commands_never_run(engine: EngineKind) {
    if engine == EngineKind::Docker {
        helper_image().await;
    }
    let db = fresh_database().await;
    let app = spawn_on(
        db.clone(),
        Options {
            runner: Some(engine),
            ..Options::default()
        },
    )
    .await;
    let origin = TempDir::new("planting");
    let sha = planting_repo(&origin.0);
    let img = image();
    let on = match engine {
        EngineKind::Shell => "\n    runs_on: {engine: shell}",
        EngineKind::Docker => "",
    };
    // `again` fails its first attempt on purpose (after planting more): the retry is a
    // fresh attempt in the same workspace.
    let yaml = format!(
        r#"jobs:
  - name: plant
    image: {img}{on}
    script: ["sh check.sh", "sh plant.sh", "echo left > left-by-plant"]
  - name: again
    image: {img}{on}
    retry: 1
    script: ["sh check.sh", "sh plant-more.sh", "test $GITWEAVE_JOB_ATTEMPT -gt 1"]
  - name: last
    image: {img}{on}
    script: ["sh check.sh", "cat left-by-plant"]
"#
    );
    repo_at(
        &app,
        &db,
        "planted",
        &format!("file://{}", origin.0.display()),
        &yaml,
    )
    .await;
    let run = app
        .trigger(
            "planted",
            &json!({ "ref": "refs/heads/main", "commit": sha }),
        )
        .await;
    let run = app.wait_run(run.id, LIMIT).await;
    let mut logs = String::new();
    for job in &run.jobs {
        logs.push_str(&text(app.raw_log(job.id).await));
    }
    assert!(!logs.contains("PWNED"), "a planted command ran: {logs}");
    assert_eq!(run.status, RunStatus::Success, "{run:#?}\n{logs}");
    assert_eq!(run.jobs[1].attempt, 2, "{run:#?}");
    assert!(logs.contains("planted more"), "{logs}");
    assert_eq!(
        logs.matches("gitweave: checking out").count(),
        1,
        "one checkout; retries and later jobs skip it: {logs}"
    );
    let last = text(app.raw_log(run.jobs[2].id).await);
    assert!(last.contains("already holds"), "{last}");
    assert!(last.contains("\nleft\n"), "the workspace is kept: {last}");

    // A rerun checks out again, into a workspace of its own.
    let r = app
        .post_json(&format!("/pipelines/runs/{}/rerun", run.id), &json!({}))
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let rerun: gitweave_api::public::Run = r.json().await.expect("run");
    let rerun = app.wait_run(rerun.id, LIMIT).await;
    let first = text(app.raw_log(rerun.jobs[0].id).await);
    assert!(first.contains("gitweave: checking out"), "{first}");
    assert!(!first.contains("PWNED"), "{first}");
    assert_eq!(rerun.status, RunStatus::Success, "{rerun:#?}");
    if engine == EngineKind::Docker {
        assert_eq!(app.settled_containers().await, Vec::<String>::new());
    }
    app.shutdown().await;
}

#[tokio::test]
async fn commands_a_job_plants_in_dot_git_never_run_in_a_later_checkout_in_docker() {
    planted_commands_never_run(EngineKind::Docker).await;
}

#[tokio::test]
async fn commands_a_job_plants_in_dot_git_never_run_in_a_later_checkout_on_the_shell_engine() {
    planted_commands_never_run(EngineKind::Shell).await;
}

/// Triggers a run of `repo` at `commit` and returns it ended, with its first job's log.
async fn run_of(app: &TestApp, repo: &str, commit: &str) -> (gitweave_api::public::Run, String) {
    let run = app
        .trigger(repo, &json!({ "ref": "refs/heads/main", "commit": commit }))
        .await;
    let run = app.wait_run(run.id, LIMIT).await;
    let log = text(app.raw_log(run.jobs[0].id).await);
    (run, log)
}

/// [`one_job`] for a shell runner.
fn one_shell_job() -> String {
    format!(
        "jobs:\n  - name: a\n    image: {}\n    runs_on: {{engine: shell}}\n    script: [\"cat old.txt\"]\n",
        image()
    )
}

fn one_job() -> String {
    format!(
        "jobs:\n  - name: a\n    image: {}\n    script: [\"cat old.txt\"]\n",
        image()
    )
}

#[tokio::test]
async fn local_clone_urls_outside_the_root_or_not_repositories_fail_with_config_error() {
    helper_image().await;
    let root = TempDir::new("root");
    let outside = TempDir::new("outside");
    let (older, _) = two_commits(&outside.0);
    let inside = root.0.join("inside");
    std::fs::create_dir_all(&inside).expect("dir");
    let (inside_sha, _) = two_commits(&inside);
    std::os::unix::fs::symlink(&outside.0, root.0.join("escape")).expect("symlink");
    std::os::unix::fs::symlink("/var/run/docker.sock", root.0.join("docker.sock"))
        .expect("symlink");
    std::fs::create_dir_all(root.0.join("plain")).expect("dir");
    let socket = root.0.join("a.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("socket");

    let db = fresh_database().await;
    let app = spawn_on(
        db.clone(),
        Options {
            local_repo_root: Some(root.0.clone()),
            // The runner's checks, not pipeline-svc's read of the repo file, are under test.
            pipeline: Some(crate::helpers::no_repo_file),
            ..Options::default()
        },
    )
    .await;
    let r = root.0.display();
    let cases = [
        (
            format!("file://{}", outside.0.display()),
            "outside RUNNER_LOCAL_REPO_ROOT",
        ),
        (format!("{r}/escape"), "outside RUNNER_LOCAL_REPO_ROOT"),
        (
            format!(
                "file://{r}/../{}",
                outside.0.file_name().expect("name").to_string_lossy()
            ),
            "outside RUNNER_LOCAL_REPO_ROOT",
        ),
        (
            "/var/run/docker.sock".to_owned(),
            "outside RUNNER_LOCAL_REPO_ROOT",
        ),
        (format!("{r}/docker.sock"), "outside RUNNER_LOCAL_REPO_ROOT"),
        (socket.display().to_string(), "is not a directory"),
        (format!("{r}/plain"), "is not a git repository"),
        (format!("{r}/missing.git"), "does not exist"),
    ];
    for (i, (url, said)) in cases.iter().enumerate() {
        let repo = format!("local{i}");
        repo_at(&app, &db, &repo, url, &one_job()).await;
        let (run, log) = run_of(&app, &repo, &older).await;
        assert_eq!(run.status, RunStatus::Failed, "{url}: {run:#?}");
        let job = &run.jobs[0];
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!(
            job.error_class,
            Some(ErrorClass::ConfigError),
            "{url}: {log}"
        );
        assert_eq!(job.exit_code, None, "{url}: nothing ran");
        assert!(log.contains(said), "{url}: {log}");
        assert!(!log.contains("checking out"), "{url}: git never ran: {log}");
    }
    // Inside the root, by path or file:// URL, through a symlink that stays inside: fine.
    std::os::unix::fs::symlink(&inside, root.0.join("alias")).expect("symlink");
    for (i, url) in [format!("file://{}", inside.display()), format!("{r}/alias")]
        .iter()
        .enumerate()
    {
        let repo = format!("inside{i}");
        repo_at(&app, &db, &repo, url, &one_job()).await;
        let (run, log) = run_of(&app, &repo, &inside_sha).await;
        assert_eq!(run.status, RunStatus::Success, "{url}: {run:#?}\n{log}");
        assert!(log.contains("only in the older commit"), "{log}");
    }
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_local_root_a_local_clone_url_fails_naming_the_setting() {
    let db = fresh_database().await;
    let app = spawn_on(
        db.clone(),
        Options {
            runner: Some(EngineKind::Shell),
            local_repo_root: None,
            pipeline: Some(crate::helpers::no_repo_file),
            ..Options::default()
        },
    )
    .await;
    let origin = TempDir::new("no-root");
    let (older, _) = two_commits(&origin.0);
    repo_at(
        &app,
        &db,
        "noroot",
        &origin.0.display().to_string(),
        &one_shell_job(),
    )
    .await;
    let (run, log) = run_of(&app, "noroot", &older).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(run.jobs[0].error_class, Some(ErrorClass::ConfigError));
    assert!(log.contains("RUNNER_LOCAL_REPO_ROOT is not set"), "{log}");
    assert!(!log.contains("only in the older commit"), "{log}");
    app.shutdown().await;
}

/// Feeds a FIFO empty contents, once for every reader that opens it, until stopped.
struct FifoFeeder {
    stop: Arc<AtomicBool>,
    path: std::path::PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FifoFeeder {
    fn start(path: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, p) = (stop.clone(), path.to_owned());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                // Blocks until a reader opens it; closing at once gives that reader EOF.
                let _ = std::fs::OpenOptions::new().write(true).open(&p);
            }
        });
        FifoFeeder {
            stop,
            path: path.to_owned(),
            thread: Some(thread),
        }
    }
}

impl Drop for FifoFeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Release a writer blocked in open: be its reader (O_NONBLOCK, 0o4000 on Linux, so
        // this open does not wait for a writer itself).
        let _ = std::os::unix::fs::OpenOptionsExt::custom_flags(
            std::fs::OpenOptions::new().read(true),
            0o4000,
        )
        .open(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test]
async fn the_checkout_helper_mounts_only_the_repository_read_only_and_no_docker_socket() {
    helper_image().await;
    // The FIFO below would hold pipeline-svc's read of the repo file as it holds the helper.
    let app = spawn_with(Options {
        pipeline: Some(crate::helpers::no_repo_file),
        ..Options::default()
    })
    .await;
    let origin = TempDir::new("inspected");
    let (older, _) = two_commits(&origin.0);
    // git in the helper reads the source's alternates file when it first looks for an
    // object: as a FIFO, it holds the helper there until the test has looked at it.
    let fifo = origin.0.join(".git/objects/info/alternates");
    std::fs::create_dir_all(fifo.parent().expect("parent")).expect("dir");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    super::repo_with(
        &app,
        "inspected",
        json!({ "clone_url": format!("file://{}", origin.0.display()) }),
        &one_job(),
    )
    .await;
    let run = app
        .trigger(
            "inspected",
            &json!({ "ref": "refs/heads/main", "commit": older }),
        )
        .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    let helper = loop {
        let out = tokio::process::Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &format!("label=gitweave.runner={}", app.runner_name),
                "--filter",
                &format!("name={}checkout-", app.prefix),
            ])
            .output()
            .await
            .expect("docker ps");
        let ids = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !ids.is_empty() {
            break ids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkout helper appeared: {:#?}",
            app.run(run.id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let inspect = tokio::process::Command::new("docker")
        .args(["inspect", &helper])
        .output()
        .await
        .expect("docker inspect");
    let feeder = FifoFeeder::start(&fifo);
    let inspected: Value = serde_json::from_slice(&inspect.stdout).expect("inspect JSON");
    let c = &inspected[0];
    let mounts = c["Mounts"].as_array().expect("mounts");
    let binds: Vec<&Value> = mounts.iter().filter(|m| m["Type"] == "bind").collect();
    assert_eq!(binds.len(), 1, "one bind, the repository: {mounts:#?}");
    let canonical = std::fs::canonicalize(&origin.0).expect("canonical");
    assert_eq!(binds[0]["Source"], canonical.display().to_string());
    assert_eq!(binds[0]["RW"], false, "read-only: {mounts:#?}");
    for m in mounts {
        assert!(
            !m["Source"]
                .as_str()
                .unwrap_or_default()
                .contains("docker.sock"),
            "{mounts:#?}"
        );
        if m["Type"] != "bind" {
            assert_eq!(m["Type"], "volume", "{m}");
            let name = m["Name"].as_str().unwrap_or_default();
            assert!(name.starts_with(&app.prefix), "only the run's volumes: {m}");
        }
    }
    assert_eq!(c["HostConfig"]["Binds"], Value::Null, "{}", c["HostConfig"]);
    assert_ne!(c["HostConfig"]["Privileged"], true);
    assert_eq!(c["HostConfig"]["CapDrop"], json!(["ALL"]));
    let run = app.wait_run(run.id, LIMIT).await;
    drop(feeder);
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let log = text(app.raw_log(run.jobs[0].id).await);
    assert!(log.contains("only in the older commit"), "{log}");
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}
