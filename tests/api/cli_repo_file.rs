//! `gitweave validate` and `gitweave exec` on a repo file with `include:` and `rules:`
//! (SPEC §9), read by the same model code as pipeline-svc: includes checked against and
//! fetched from the real test stack (or reported unchecked / refused without it), rules
//! evaluated for a push of the current branch; and exec's `retry` and `--input`.

use crate::cli_exec::{Tree, gitweave, json_lines, stdout};
use crate::helpers::{TestApp, image, no_runner, spawn_with};
use assert_cmd::assert::Assert;
use serde_json::Value;

fn stderr(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The stored template `build`: one job printing its input `who` (the image is the server's
/// requirement; the shell engine ignores it).
fn build() -> String {
    format!(
        "inputs:\n  who: {{ default: nobody }}\njobs:\n  - name: compile\n    image: {}\n    script: [\"echo compiled-for-${{{{ inputs.who }}}}\"]\n",
        image()
    )
}

/// A file including `build` with `inputs`, then its own job `test`.
fn including(inputs: &str) -> String {
    format!(
        "include:\n  - template: build\n    inputs:\n      {inputs}\njobs:\n  - name: test\n    script: [\"echo tested\"]\n"
    )
}

async fn stack_with_build() -> TestApp {
    let app = spawn_with(no_runner()).await;
    app.template_ok("build", &build()).await;
    app
}

#[tokio::test]
async fn validate_checks_includes_against_the_server_or_reports_them_unchecked() {
    let app = stack_with_build().await;
    let gw = app.gateway.clone();
    let t = Tree::new(&including("who: file"));

    // The server answers: checked, with the version it stores.
    let ok = gitweave(&t.0, &["--url", &gw, "validate"]).await.code(0);
    let out = stdout(&ok);
    assert!(out.contains("valid (1 jobs: test)"), "{out}");
    assert!(out.contains("include build: checked (version 1)"), "{out}");

    // An input the template does not declare: an error at its place, with a suggestion.
    t.write("typo.yml", &including("wh0: file"));
    let bad = gitweave(&t.0, &["--url", &gw, "validate", "typo.yml"])
        .await
        .code(1);
    let err = stderr(&bad);
    assert!(
        err.contains(
            "typo.yml:4:7: include[0].inputs.wh0: template \"build\" declares no input \"wh0\""
        ) && err.contains("(did you mean \"who\"?)"),
        "{err}"
    );
    let json: Value = serde_json::from_str(&stdout(
        &gitweave(&t.0, &["--url", &gw, "--json", "validate", "typo.yml"])
            .await
            .code(1),
    ))
    .expect("JSON");
    assert_eq!(json["problems"][0]["did_you_mean"], "who", "{json}");
    assert_eq!(json["includes"][0]["status"], "checked", "{json}");

    // A template the server does not store: an error naming it.
    t.write(
        "missing.yml",
        "include:\n  - template: nosuch\njobs:\n  - name: test\n    script: [\"true\"]\n",
    );
    let bad = gitweave(&t.0, &["--url", &gw, "validate", "missing.yml"])
        .await
        .code(1);
    let err = stderr(&bad);
    assert!(
        err.contains("missing.yml:2:") && err.contains("\"nosuch\" is not stored"),
        "{err}"
    );

    // No server (the helper's GITWEAVE_URL is a closed port): unchecked, and still valid.
    let offline = gitweave(&t.0, &["validate", "typo.yml"]).await.code(0);
    let out = stdout(&offline);
    assert!(
        out.contains("include build: unchecked (GitWeave at http://127.0.0.1:9 does not answer"),
        "{out}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn exec_runs_included_templates_from_the_server_before_the_files_jobs() {
    let app = stack_with_build().await;
    let gw = app.gateway.clone();
    let t = Tree::new(&including("who: file"));
    let a = gitweave(&t.0, &["--url", &gw, "exec", "--engine", "shell"])
        .await
        .code(0);
    let out = stdout(&a);
    let compiled = out
        .find("build/compile | compiled-for-file")
        .unwrap_or_else(|| panic!("{out}"));
    let tested = out
        .find("pipeline/test | tested")
        .unwrap_or_else(|| panic!("{out}"));
    // The included stage runs first, as on the server.
    assert!(compiled < tested, "{out}");
    assert!(out.contains("run success"), "{out}");

    // A job of the included stage by its bare name: only it runs.
    let a = gitweave(
        &t.0,
        &[
            "--url", &gw, "exec", "--engine", "shell", "--job", "compile",
        ],
    )
    .await
    .code(0);
    let out = stdout(&a);
    assert!(out.contains("build/compile | compiled-for-file"), "{out}");
    assert!(!out.contains("pipeline/test"), "{out}");

    // Without the server, exec refuses, naming the include.
    let a = gitweave(&t.0, &["exec", "--engine", "shell"]).await.code(2);
    let err = stderr(&a);
    assert!(
        err.contains("include[0] \"build\"") && err.contains("does not answer"),
        "{err}"
    );
    app.shutdown().await;
}

/// `test` always; `deploy` only on `release`; `docs` only when `docs/` changed.
const RULED: &str = "jobs:\n  - name: test\n    script: [\"echo tested\"]\n  - name: deploy\n    script: [\"echo deployed\"]\n    rules:\n      - branch: [release]\n  - name: docs\n    script: [\"echo documented\"]\n    rules:\n      - changes: [\"docs/**\"]\n";

#[tokio::test]
async fn rules_are_evaluated_as_a_push_of_the_current_branch_with_the_work_trees_changes() {
    let t = Tree::new(RULED);

    // On main with a clean tree: deploy and docs are left out.
    let out = stdout(&gitweave(&t.0, &["validate"]).await.code(0));
    assert!(
        out.contains("a push on branch main runs: pipeline/test (left out by rules: deploy, docs)"),
        "{out}"
    );
    let a = gitweave(&t.0, &["exec", "--engine", "shell"]).await.code(0);
    let out = stdout(&a);
    assert!(out.contains("pipeline/test | tested"), "{out}");
    assert!(
        !out.contains("pipeline/deploy") && !out.contains("pipeline/docs"),
        "{out}"
    );

    // An untracked file under docs/ is a change: docs runs. On branch release, deploy too.
    t.write("docs/guide.md", "new\n");
    t.git(&["checkout", "-q", "-b", "release"]);
    let events = json_lines(
        &gitweave(&t.0, &["exec", "--engine", "shell", "--json"])
            .await
            .code(0),
    );
    let started = events
        .iter()
        .find(|e| e["event"] == "run.started")
        .expect("run.started");
    assert_eq!(
        started["jobs"],
        serde_json::json!(["pipeline/test", "pipeline/deploy", "pipeline/docs"]),
        "{events:?}"
    );

    // A pipeline rule that matches nothing: no run, exit 0.
    t.write(
        "only-tags.yml",
        "rules:\n  - event: [tag]\njobs:\n  - name: test\n    script: [\"echo tested\"]\n",
    );
    let a = gitweave(&t.0, &["exec", "--engine", "shell", "-f", "only-tags.yml"])
        .await
        .code(0);
    assert!(
        stderr(&a).contains("matches a push on branch release: nothing to run"),
        "{}",
        stderr(&a)
    );
    assert!(!stdout(&a).contains("tested"), "{}", stdout(&a));
}

#[tokio::test]
async fn exec_retries_a_failed_attempt_and_takes_inputs() {
    let t = Tree::new(
        "inputs:\n  greeting: { default: hi }\njobs:\n  - name: flaky\n    retry: { max: 2, exit_codes: [7] }\n    script:\n      - echo \"attempt-$GITWEAVE_JOB_ATTEMPT says ${{ inputs.greeting }}\"\n      - test \"$GITWEAVE_JOB_ATTEMPT\" -ge 2 || exit 7\n",
    );
    let events = json_lines(
        &gitweave(
            &t.0,
            &[
                "exec",
                "--engine",
                "shell",
                "--json",
                "--input",
                "greeting=hej",
            ],
        )
        .await
        .code(0),
    );
    let logs: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "log")
        .filter_map(|e| e["line"].as_str())
        .filter(|l| !l.starts_with("$ "))
        .collect();
    assert_eq!(
        logs,
        ["attempt-1 says hej", "attempt-2 says hej"],
        "{events:?}"
    );
    let retried = events
        .iter()
        .find(|e| e["event"] == "job.retried")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(
        (&retried["attempt"], &retried["error_class"]),
        (&serde_json::json!(2), &serde_json::json!("exit_code")),
        "{retried}"
    );
    let finished = events
        .iter()
        .find(|e| e["event"] == "job.finished")
        .expect("job.finished");
    assert_eq!(
        (&finished["status"], &finished["attempts"]),
        (&serde_json::json!("success"), &serde_json::json!(2)),
        "{finished}"
    );

    // An exit code the policy does not retry: one attempt, the run fails (exit 1).
    t.write(
        "other.yml",
        "jobs:\n  - name: broken\n    retry: { max: 2, exit_codes: [7] }\n    script: [\"exit 3\"]\n",
    );
    let events = json_lines(
        &gitweave(
            &t.0,
            &["exec", "--engine", "shell", "--json", "-f", "other.yml"],
        )
        .await
        .code(1),
    );
    assert!(
        !events.iter().any(|e| e["event"] == "job.retried"),
        "{events:?}"
    );
    let finished = events
        .iter()
        .find(|e| e["event"] == "job.finished")
        .expect("job.finished");
    assert_eq!(
        (&finished["exit_code"], &finished["attempts"]),
        (&serde_json::json!(3), &serde_json::json!(1)),
        "{finished}"
    );

    // An input the file does not declare: the CLI's own error, with the model's words.
    let a = gitweave(&t.0, &["exec", "--engine", "shell", "--input", "nope=1"])
        .await
        .code(2);
    assert!(stderr(&a).contains("nope"), "{}", stderr(&a));
}
