//! A trigger without `commit` on a repo with a clone URL runs the ref's head at trigger time:
//! the commit is resolved (`git ls-remote`), recorded on the run and checked out.

use super::checkout::{TempDir, git, text, two_commits};
use super::{LIMIT, repo_with, runs_of};
use crate::helpers::{EngineKind, Options, envelope, image, spawn_with};
use gitweave_model::status::RunStatus;
use serde_json::json;

#[tokio::test]
async fn a_trigger_without_a_commit_runs_and_records_the_refs_head() {
    let app = spawn_with(Options {
        runner: Some(EngineKind::Shell),
        ..Options::default()
    })
    .await;
    let origin = TempDir::new("origin-head");
    let (older, newer) = two_commits(&origin.0);
    git(
        &origin.0,
        &["tag", "-a", "-m", "first release", "v1", &older],
    );
    git(&origin.0, &["branch", "old", &older]);
    repo_with(
        &app,
        "head",
        json!({ "clone_url": format!("file://{}", origin.0.display()) }),
        &format!(
            "jobs:\n  - name: check\n    image: {}\n    runs_on: {{engine: shell}}\n    script:\n      - git rev-parse HEAD\n      - ls\n",
            image()
        ),
    )
    .await;

    // No ref, no commit: the default branch's head, recorded and checked out.
    let run = app.trigger("head", &json!({})).await;
    assert_eq!(run.commit.as_deref(), Some(newer.as_str()), "{run:#?}");
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    assert_eq!(
        app.run(run.id).await.commit.as_deref(),
        Some(newer.as_str())
    );
    let log = text(app.raw_log(run.jobs[0].id).await);
    assert!(
        log.contains(&format!("gitweave: checking out {newer} (main)")),
        "{log}"
    );
    assert!(
        log.contains(&format!("$ git rev-parse HEAD\n{newer}\n")),
        "{log}"
    );
    assert!(log.contains("new.txt"), "the head's files: {log}");

    // A branch by its full name, and an annotated tag (its commit, not the tag object).
    for git_ref in ["refs/heads/old", "v1"] {
        let run = app.trigger("head", &json!({ "ref": git_ref })).await;
        assert_eq!(run.commit.as_deref(), Some(older.as_str()), "{git_ref}");
        let run = app.wait_run(run.id, LIMIT).await;
        assert_eq!(run.status, RunStatus::Success, "{git_ref}: {run:#?}");
        let log = text(app.raw_log(run.jobs[0].id).await);
        assert!(log.contains("old.txt"), "{git_ref}: {log}");
    }
    // A commit given is used as it is.
    let run = app
        .trigger("head", &json!({ "ref": "main", "commit": older }))
        .await;
    assert_eq!(run.commit.as_deref(), Some(older.as_str()));
    app.wait_run(run.id, LIMIT).await;
    let made = runs_of(&app, "head").await.len();

    // A ref the repository does not have is a 422 that names it, and makes no run.
    let (status, code, message) = envelope(
        app.post_json(
            "/repos/head/pipelines/run",
            &json!({ "ref": "no-such-branch" }),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "unknown_ref"), "{message}");
    assert!(message.contains("\"no-such-branch\""), "{message}");
    assert!(message.contains("commit"), "says what to do: {message}");

    // A server that does not answer: a 422 that says so, and no run either.
    repo_with(
        &app,
        "gone",
        json!({ "clone_url": "http://deploy:s3cret@127.0.0.1:9/nothing.git" }),
        &format!(
            "jobs:\n  - name: a\n    image: {}\n    script: [\"true\"]\n",
            image()
        ),
    )
    .await;
    let (status, code, message) =
        envelope(app.post_json("/repos/gone/pipelines/run", &json!({})).await).await;
    assert_eq!(
        (status, code.as_str()),
        (422, "ref_unresolved"),
        "{message}"
    );
    assert!(
        message.contains("http://deploy:***@127.0.0.1:9/nothing.git"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert_eq!(runs_of(&app, "head").await.len(), made);
    assert!(runs_of(&app, "gone").await.is_empty());
    app.shutdown().await;
}
