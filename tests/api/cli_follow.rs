//! `gitweave trigger --follow` / `rerun --follow` against the real stack: each job's log
//! streamed behind its name while the run goes on, then the summary and the run's exit code;
//! Ctrl-C detaches with exit 130 and says how to cancel.

use crate::cli::{gitweave, stdout};
use crate::helpers::{bin, image, spawn_with};
use std::io::{BufRead, BufReader};

#[tokio::test]
async fn follow_streams_each_jobs_log_behind_its_name_then_the_summary() {
    let app = spawn_with(Default::default()).await;
    let img = image();
    app.repo_with(
        "shop",
        "ci",
        &format!(
            "jobs:\n  - name: one\n    image: {img}\n    script: [\"echo alpha-1\", \"sleep 1\", \"echo alpha-2\"]\n  - name: two\n    image: {img}\n    allow_failure: true\n    script: [\"echo beta\", \"exit 5\"]\n  - name: three\n    image: {img}\n    script: [\"echo gamma\", \"exit 4\"]\n"
        ),
    )
    .await;
    let a = gitweave(&app, &["trigger", "shop", "--follow"])
        .await
        .code(1);
    let out = stdout(&a);
    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {out}"))
    };
    // Every line of every job, behind its name, in the order the jobs ran; then the summary.
    let lines = [
        "ci/one | $ echo alpha-1",
        "ci/one | alpha-1",
        "ci/one | alpha-2",
        "ci/two | beta",
        "ci/three | gamma",
        "Run Summary: ",
    ];
    let at: Vec<usize> = lines.iter().map(|l| pos(l)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert!(out.contains("! ci/two"), "{out}");
    assert!(out.contains("✗ ci/three"), "{out}");
    assert!(out.contains("Status: ✗ FAILED"), "{out}");

    // rerun --follow of a run by short id: the same, from the new run; --json puts the
    // logs on stderr and the ended run on stdout.
    let short = out
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split(' ').next())
        .expect("run line")
        .to_owned();
    let a = gitweave(&app, &["rerun", &short, "--follow", "--json"])
        .await
        .code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("ci/three | gamma"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("run JSON");
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["jobs"][1]["allow_failure"], true, "{v}");
    app.shutdown().await;
}

#[tokio::test]
async fn ctrl_c_detaches_from_a_followed_run_and_says_how_to_cancel_it() {
    let app = spawn_with(Default::default()).await;
    app.repo_with(
        "shop",
        "slow",
        &format!(
            "jobs:\n  - name: wait\n    image: {}\n    script: [\"echo started\", \"sleep 60\"]\n",
            image()
        ),
    )
    .await;
    let mut child = std::process::Command::new(bin("gitweave"))
        .env_remove("GITWEAVE_API_TOKEN")
        .env("NO_COLOR", "1")
        .args(["--url", &app.gateway, "trigger", "shop", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gitweave");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id().to_string();
    // Once the job's first line is printed, the follow is under way: interrupt it.
    let seen = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        for l in lines.by_ref() {
            let l = l.expect("line");
            let done = l.contains("slow/wait | started");
            seen.push(l);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .expect("reader");
    assert!(
        seen.iter().any(|l| l.contains("slow/wait | started")),
        "{seen:?}"
    );
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let short = seen[0]
        .strip_prefix("run ")
        .and_then(|l| l.split(' ').next())
        .expect("run line")
        .to_owned();
    assert!(
        err.contains(&format!("Cancel it with: gitweave cancel {short}")),
        "{err}"
    );
    // Detached, not canceled: the run goes on until someone cancels it.
    let v = app.get_json(&format!("/pipelines/runs/{short}")).await;
    assert_eq!(v["status"], "running", "{v}");
    gitweave(&app, &["cancel", &short]).await.success();
    app.shutdown().await;
}
