//! Pull requests (SPEC §9) from the published GitHub, Gitea and GitLab payloads, re-signed:
//! the right actions make `pull_request` runs at the PR's head ref with its variables, other
//! actions make none, a file reachable only from the PR's ref is read at its head commit, and
//! no protected secret reaches a pull request run (issue 13 item 5).

use super::checkout::text;
use super::checkout::{TempDir, git};
use super::{LIMIT, SECRET, deliver, fixture, helper_image, json_of, no_runner};
use crate::hand::{claim, runner_token};
use crate::helpers::{Options, TestApp, image, spawn_with};
use gitweave_api::public::{PullRequest, Run};
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus, Trigger};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn put(app: &TestApp, path: &str, body: Value) {
    let r = app.put_json(path, &body).await;
    assert!(r.status().is_success(), "PUT {path}: {}", r.status());
}

/// Delivers GitHub's published `opened` payload for repo `repo`, its head moved to `head`.
async fn deliver_pr_at(
    app: &TestApp,
    repo: &str,
    delivery: &str,
    head: &str,
) -> (StatusCode, Value) {
    let mut payload: Value =
        serde_json::from_slice(&fixture("github-pull_request-opened.json")).expect("json");
    payload["pull_request"]["head"]["sha"] = json!(head);
    let body = serde_json::to_vec(&payload).expect("json");
    json_of(deliver(app, repo, "github", "pull_request", delivery, &body).await).await
}

fn one_job(extra: &str) -> String {
    format!(
        "jobs:\n  - name: check\n    image: {}\n    script: [\"env\"]\n{extra}",
        image()
    )
}

#[tokio::test]
async fn the_published_payloads_make_pull_request_runs_and_other_actions_none() {
    let app = spawn_with(no_runner()).await;
    put(&app, "/repos/prs", json!({ "webhook_secret": SECRET })).await;
    app.template_ok("t", &one_job("")).await;
    app.attach("prs", "t").await;

    let (status, v) = json_of(
        deliver(
            &app,
            "prs",
            "github",
            "pull_request",
            "gh1",
            &fixture("github-pull_request-opened.json"),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let run: Run = serde_json::from_value(v).expect("run");
    assert_eq!(run.trigger, Trigger::PullRequest);
    assert_eq!(run.git_ref, "refs/pull/2/head");
    assert_eq!(
        run.commit.as_deref(),
        Some("ec26c3e57ca3a959ca5aad62de7213c562f8c821")
    );
    assert_eq!(
        run.pull_request,
        Some(PullRequest {
            number: 2,
            source_branch: "changes".into(),
            target_branch: "master".into(),
            fork: false,
        })
    );
    // The job's environment has the pull request's variables.
    let token = runner_token(&app).await;
    let a = claim(&app, &token).await.expect("the job");
    assert_eq!(a.env["GITWEAVE_PR_NUMBER"], "2");
    assert_eq!(a.env["GITWEAVE_PR_SOURCE_BRANCH"], "changes");
    assert_eq!(a.env["GITWEAVE_PR_TARGET_BRANCH"], "master");
    assert_eq!(a.env["GITWEAVE_REF"], "refs/pull/2/head");

    for (provider, event, file, runs) in [
        (
            "gitea",
            "pull_request",
            "gitea-pull_request-opened.json",
            true,
        ),
        (
            "forgejo",
            "pull_request",
            "gitea-pull_request-synchronized.json",
            true,
        ),
        (
            "gitea",
            "pull_request",
            "gitea-pull_request-closed.json",
            false,
        ),
        (
            "gitlab",
            "Merge Request Hook",
            "gitlab-merge_request-update-captured.json",
            true,
        ),
        (
            "gitlab",
            "Merge Request Hook",
            "gitlab-merge_request-close-captured.json",
            false,
        ),
        (
            "gitlab",
            "Merge Request Hook",
            "gitlab-merge_request-edited-captured.json",
            false,
        ),
    ] {
        let (status, v) =
            json_of(deliver(&app, "prs", provider, event, file, &fixture(file)).await).await;
        if runs {
            assert_eq!(status, StatusCode::CREATED, "{file}: {v}");
            assert_eq!(v["trigger"], "pull_request", "{file}: {v}");
        } else {
            assert_eq!(status, StatusCode::ACCEPTED, "{file}: {v}");
            assert_eq!(v["status"], "ignored", "{file}: {v}");
        }
        if file.starts_with("gitlab-merge_request-update") {
            assert_eq!(v["ref"], "refs/merge-requests/3/head", "{v}");
            assert_eq!(v["pull_request"]["target_branch"], "main", "{v}");
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_file_is_read_at_the_head_commit_of_the_pull_requests_ref() {
    let app = spawn_with(no_runner()).await;
    let origin = TempDir::new("pr-origin");
    let work = TempDir::new("pr-work");
    git(&origin.0, &["init", "-q", "--bare"]);
    git(&work.0, &["init", "-q"]);
    std::fs::write(
        work.0.join(".gitweave.yml"),
        format!(
            "rules:\n  - event: [pull_request]\n    branch: [master]\n{}",
            one_job("")
        ),
    )
    .expect("write");
    git(&work.0, &["add", "-A"]);
    git(&work.0, &["commit", "-q", "-m", "on master"]);
    let origin_path = origin.0.display().to_string();
    git(
        &work.0,
        &["push", "-q", &origin_path, "HEAD:refs/heads/master"],
    );
    // The PR's head exists only under refs/pull/2/head, as a forge keeps it.
    std::fs::write(
        work.0.join(".gitweave.yml"),
        format!(
            "rules:\n  - event: [pull_request]\njobs:\n  - name: from-the-pr\n    image: {}\n    script: [x]\n",
            image()
        ),
    )
    .expect("write");
    git(&work.0, &["commit", "-q", "-am", "the pr"]);
    let head = git(&work.0, &["rev-parse", "HEAD"]);
    git(
        &work.0,
        &["push", "-q", &origin_path, "HEAD:refs/pull/2/head"],
    );
    put(
        &app,
        "/repos/prfile",
        json!({ "webhook_secret": SECRET, "clone_url": origin_path }),
    )
    .await;
    let (status, v) = deliver_pr_at(&app, "prfile", "p1", &head).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let run: Run = serde_json::from_value(v).expect("run");
    assert_eq!(run.jobs[0].name, "pipeline/from-the-pr");
    assert_eq!(run.commit.as_deref(), Some(head.as_str()));
    app.shutdown().await;
}

#[tokio::test]
async fn a_pull_request_run_never_gets_a_protected_secret_whatever_its_ref() {
    let app = spawn_with(no_runner()).await;
    // Every ref is protected: only the pull request rule can refuse.
    put(
        &app,
        "/repos/prsec",
        json!({ "webhook_secret": SECRET, "protected_refs": ["**"] }),
    )
    .await;
    put(
        &app,
        "/repos/prsec/secrets/DEPLOY_TOKEN",
        json!({ "value": "deploy-value-5c1d", "protected": true }),
    )
    .await;
    app.template_ok("s", &one_job("    secrets: [DEPLOY_TOKEN]\n"))
        .await;
    app.attach("prsec", "s").await;
    let token = runner_token(&app).await;

    let (status, v) = json_of(
        deliver(
            &app,
            "prsec",
            "github",
            "pull_request",
            "s1",
            &fixture("github-pull_request-opened.json"),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let run: Run = serde_json::from_value(v).expect("run");
    assert!(
        claim(&app, &token).await.is_none(),
        "no runner gets the job"
    );
    let ended = app.wait_run(run.id, Duration::from_secs(20)).await;
    let j = &ended.jobs[0];
    assert_eq!(
        (j.status, j.error_class),
        (JobStatus::Failed, Some(ErrorClass::ConfigError))
    );
    let reason = j.reason.clone().expect("reason");
    assert!(
        reason.contains("DEPLOY_TOKEN") && reason.contains("pull request"),
        "{reason}"
    );

    // The same secret on an API run of a (protected) branch is given.
    let r = app.trigger("prsec", &json!({ "ref": "main" })).await;
    let a = claim(&app, &token).await.expect("the job");
    assert_eq!(a.run_id, r.id);
    assert_eq!(a.secrets.len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_pull_request_run_checks_out_the_prs_head_through_the_runner_in_docker() {
    helper_image().await;
    let app = spawn_with(Options::default()).await;
    let origin = TempDir::new("pr-run-origin");
    let work = TempDir::new("pr-run-work");
    git(&origin.0, &["init", "-q", "--bare"]);
    git(&work.0, &["init", "-q"]);
    let img = image();
    // The file on master says what the job checks; the PR adds the file it reads. The PR's
    // commit is only under refs/pull/2/head, as a forge keeps it: on no branch, on no tag.
    std::fs::write(
        work.0.join(".gitweave.yml"),
        format!(
            r#"jobs:
  - name: check
    image: {img}
    script:
      - cat from-the-pr.txt
      - echo "PR=$GITWEAVE_PR_NUMBER FROM=$GITWEAVE_PR_SOURCE_BRANCH HEAD=$(cat .git/HEAD)"
"#
        ),
    )
    .expect("write");
    git(&work.0, &["add", "-A"]);
    git(&work.0, &["commit", "-q", "-m", "on master"]);
    let origin_url = format!("file://{}", origin.0.display());
    git(
        &work.0,
        &["push", "-q", &origin_url, "HEAD:refs/heads/master"],
    );
    std::fs::write(
        work.0.join("from-the-pr.txt"),
        "written on the pr's branch\n",
    )
    .expect("write");
    git(&work.0, &["add", "-A"]);
    git(&work.0, &["commit", "-q", "-m", "the pr"]);
    let head = git(&work.0, &["rev-parse", "HEAD"]);
    git(
        &work.0,
        &["push", "-q", &origin_url, "HEAD:refs/pull/2/head"],
    );
    put(
        &app,
        "/repos/prrun",
        json!({ "webhook_secret": SECRET, "clone_url": origin_url }),
    )
    .await;

    let (status, v) = deliver_pr_at(&app, "prrun", "pr-run", &head).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let run: Run = serde_json::from_value(v).expect("run");
    assert_eq!(run.git_ref, "refs/pull/2/head");
    let run = app.wait_run(run.id, LIMIT).await;
    let log = text(app.raw_log(run.jobs[0].id).await);
    assert_eq!(run.status, RunStatus::Success, "{run:#?}\n{log}");
    assert!(
        log.contains(&format!("gitweave: checking out {head} (refs/pull/2/head)")),
        "{log}"
    );
    assert!(log.contains("written on the pr's branch"), "{log}");
    assert!(
        log.contains(&format!("PR=2 FROM=changes HEAD={head}")),
        "{log}"
    );
    app.shutdown().await;
}
