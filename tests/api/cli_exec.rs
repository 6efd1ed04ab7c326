//! `gitweave exec` and `gitweave validate`: the work tree's pipeline run on the real Docker
//! engine (and the shell engine) from a real git repository, with no server at all; and the
//! file checked offline.

use crate::helpers::{bin, image};
use assert_cmd::assert::Assert;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A git work tree with a committed `.gitweave.yml`, removed when dropped.
pub(crate) struct Tree(pub(crate) PathBuf);

impl Tree {
    pub(crate) fn new(pipeline: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("gitweave-exec-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).expect("dir");
        let t = Tree(d);
        t.git(&["init", "-q", "-b", "main"]);
        t.git(&["config", "user.email", "dev@example.com"]);
        t.git(&["config", "user.name", "dev"]);
        t.write(".gitweave.yml", pipeline);
        t.write(".gitignore", "*.log\ntarget/\n");
        t.write("notes.txt", "committed\n");
        t.git(&["add", "."]);
        t.git(&["commit", "-q", "-m", "init"]);
        t
    }

    pub(crate) fn git(&self, args: &[&str]) {
        let o = std::process::Command::new("git")
            .args(args)
            .current_dir(&self.0)
            .output()
            .expect("git");
        assert!(o.status.success(), "git {args:?}: {o:?}");
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("dir");
        }
        std::fs::write(p, text).expect("write");
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) async fn gitweave(dir: &Path, args: &[&str]) -> Assert {
    let mut cmd = assert_cmd::Command::new(bin("gitweave"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        // No server: exec must not need one.
        .env("GITWEAVE_URL", "http://127.0.0.1:9")
        .args(args)
        .timeout(Duration::from_secs(180));
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the CLI ran")
}

pub(crate) fn stdout(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// Containers and volumes the exec run `run_id` (its `run.started` event's) left behind: it
/// must leave none. Its containers carry the label `gitweave.runner=exec-<run id>`.
fn leftovers(events: &[Value]) -> Vec<String> {
    let run = events
        .iter()
        .find(|e| e["event"] == "run.started")
        .and_then(|e| e["run_id"].as_str())
        .and_then(|id| id.parse::<uuid::Uuid>().ok())
        .expect("a run.started event with the run id")
        .simple()
        .to_string();
    let mut all = Vec::new();
    for args in [
        vec![
            "ps".to_owned(),
            "-a".into(),
            "--filter".into(),
            format!("label=gitweave.runner=exec-{run}"),
            "--format".into(),
            "{{.Names}}".into(),
        ],
        vec![
            "volume".to_owned(),
            "ls".into(),
            "--filter".into(),
            format!("name=gitweave-exec-ws-exec-{run}"),
            "-q".into(),
        ],
    ] {
        let o = std::process::Command::new("docker")
            .args(&args)
            .output()
            .expect("docker");
        assert!(o.status.success(), "docker {args:?}: {o:?}");
        all.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    all
}

pub(crate) fn json_lines(a: &Assert) -> Vec<Value> {
    stdout(a)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn two_jobs(img: &str) -> String {
    format!(
        "jobs:\n  - name: build\n    image: {img}\n    script:\n      - cat src/dirty.txt\n      - echo built-$GITWEAVE_JOB_NAME > out.txt\n  - name: test\n    image: {img}\n    script:\n      - cat out.txt notes.txt\n      - if [ -e build.log ]; then echo ignored-file-copied; else echo ignored-file-left-out; fi\n"
    )
}

#[tokio::test]
async fn exec_runs_the_work_tree_with_its_uncommitted_changes_on_docker() {
    let t = Tree::new(&two_jobs(&image()));
    // Not committed, not even added: the job still reads it. Ignored: left out.
    t.write("src/dirty.txt", "dirty-and-uncommitted\n");
    t.write("build.log", "ignored\n");
    let a = gitweave(&t.0, &["exec"]).await.code(0);
    let out = stdout(&a);
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {out}"))
    };
    let order = [
        "pipeline/build | dirty-and-uncommitted",
        "pipeline/test | built-pipeline/build",
        "pipeline/test | committed",
        "pipeline/test | ignored-file-left-out",
        "run success",
    ];
    let pos: Vec<usize> = order.iter().map(|n| at(n)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{out}");

    // --include-ignored copies the ignored file too; nothing is left behind.
    let events = json_lines(
        &gitweave(&t.0, &["exec", "--include-ignored", "--json"])
            .await
            .code(0),
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "log" && e["line"] == "ignored-file-copied"),
        "{events:?}"
    );
    assert_eq!(leftovers(&events), Vec::<String>::new());
}

#[tokio::test]
async fn a_failing_job_fails_the_run_skips_what_needs_it_and_sets_the_exit_code() {
    let img = image();
    let t = Tree::new(&format!(
        "jobs:\n  - name: compile\n    image: {img}\n    script: [\"echo compiling\", \"exit 3\"]\n  - name: lint\n    image: {img}\n    allow_failure: true\n    script: [\"exit 4\"]\n  - name: package\n    image: {img}\n    needs: [compile]\n    script: [\"echo never\"]\n  - name: cleanup\n    image: {img}\n    needs: [compile]\n    when: always\n    script: [\"echo cleaning\"]\n"
    ));
    let events = json_lines(&gitweave(&t.0, &["exec", "--json"]).await.code(1));
    let finished = |job: &str| {
        events
            .iter()
            .find(|e| e["event"] == "job.finished" && e["job"] == job)
            .unwrap_or_else(|| panic!("{job} finished in {events:?}"))
    };
    assert_eq!(finished("pipeline/compile")["exit_code"], 3);
    assert_eq!(finished("pipeline/compile")["error_class"], "exit_code");
    assert_eq!(finished("pipeline/lint")["status"], "failed");
    assert_eq!(finished("pipeline/cleanup")["status"], "success");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "job.skipped" && e["job"] == "pipeline/package"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "log"
            && e["job"] == "pipeline/cleanup"
            && e["line"] == "cleaning"),
        "{events:?}"
    );
    assert_eq!(
        events
            .last()
            .map(|e| (e["event"].clone(), e["status"].clone())),
        Some(("run.completed".into(), "failed".into()))
    );
    assert_eq!(leftovers(&events), Vec::<String>::new());

    // Only the allowed failure: the run succeeds (exit 0) with a warning mark.
    let out = stdout(&gitweave(&t.0, &["exec", "--job", "lint"]).await.code(0));
    assert!(out.contains("!  failed  pipeline/lint"), "{out}");
    assert!(!out.contains("pipeline/compile"), "{out}");
}

#[tokio::test]
async fn exec_with_the_shell_engine_runs_a_named_job_and_what_it_needs() {
    let t = Tree::new(&two_jobs(&image()));
    t.write("src/dirty.txt", "on-the-host\n");
    let a = gitweave(&t.0, &["exec", "--engine", "shell", "--job", "test"])
        .await
        .code(0);
    let out = stdout(&a);
    // `test` needs `build` (sequential order): both ran, in order.
    let b = out
        .find("pipeline/build | on-the-host")
        .unwrap_or_else(|| panic!("{out}"));
    let c = out
        .find("pipeline/test | built-pipeline/build")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(b < c, "{out}");
    // The work tree itself is untouched: jobs ran in a copy.
    assert!(!t.0.join("out.txt").exists());
    // An unknown job: exit 2 with the closest name.
    let a = gitweave(&t.0, &["exec", "--job", "tset"]).await.code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("did you mean \"test\"?"), "{err}");
}

#[tokio::test]
async fn validate_checks_offline_with_places_and_suggestions() {
    let t = Tree::new(&two_jobs(&image()));
    let out = stdout(&gitweave(&t.0, &["validate"]).await.code(0));
    assert!(out.ends_with("valid (2 jobs: build, test)\n"), "{out}");
    t.write(
        "bad.yml",
        "inputs:\n  greeting: { default: hi }\njobs:\n  - name: build\n    image: x\n    script: [\"echo ${{ inputs.greting }}\"]\n  - name: test\n    image: x\n    needs: [biuld]\n    script: [\"true\"]\n",
    );
    let a = gitweave(&t.0, &["validate", "bad.yml"]).await.code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("bad.yml:~9:13: ") && err.contains("(did you mean \"build\"?)"),
        "{err}"
    );
    assert!(err.contains("(did you mean \"greeting\"?)"), "{err}");
    t.write(
        "typo.yml",
        "jobs:\n  - name: a\n    imgae: x\n    script: [\"true\"]\n",
    );
    let a = gitweave(&t.0, &["validate", "typo.yml", "--json"])
        .await
        .code(1);
    let v: Value = serde_json::from_str(&stdout(&a)).expect("JSON");
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"][0]["line"], 3, "{v}");
    assert_eq!(v["problems"][0]["did_you_mean"], "image", "{v}");
    // No file at all: exit 2 naming what was looked for.
    let empty =
        std::env::temp_dir().join(format!("gitweave-empty-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&empty).expect("dir");
    let a = gitweave(&empty, &["validate"]).await.code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains(".gitweave.yml"), "{err}");
    let _ = std::fs::remove_dir_all(&empty);
}

#[tokio::test]
async fn completions_and_the_man_page_name_the_commands() {
    let here = std::env::temp_dir();
    for shell in ["bash", "zsh", "fish"] {
        let out = stdout(&gitweave(&here, &["completions", shell]).await.code(0));
        assert!(
            out.contains("exec")
                && out.contains("validate")
                && out.contains("artifacts")
                && out.contains("--get"),
            "{shell}: {out}"
        );
    }
    let man = stdout(&gitweave(&here, &["man"]).await.code(0));
    assert!(
        man.starts_with(".ie") || man.contains(".TH gitweave"),
        "{man}"
    );
    assert!(man.contains("exec") && man.contains("artifacts"), "{man}");
}

#[tokio::test]
async fn ctrl_c_stops_a_local_run_and_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader};
    let img = image();
    let t = Tree::new(&format!(
        "jobs:\n  - name: slow\n    image: {img}\n    script: [\"echo started\", \"sleep 60\"]\n  - name: after\n    image: {img}\n    script: [\"echo never\"]\n"
    ));
    let mut child = std::process::Command::new(bin("gitweave"))
        .current_dir(&t.0)
        .args(["exec", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gitweave");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id().to_string();
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut seen: Vec<Value> = Vec::new();
        let mut signalled = false;
        for l in lines.by_ref() {
            let v: Value = serde_json::from_str(&l.expect("line")).expect("JSON");
            if !signalled && v["event"] == "log" && v["line"] == "started" {
                let kill = std::process::Command::new("kill")
                    .args(["-INT", &pid])
                    .status()
                    .expect("kill");
                assert!(kill.success());
                signalled = true;
            }
            seen.push(v);
        }
        seen
    });
    let events = reader.await.expect("reader");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(out.status.code(), Some(130), "{out:?} {events:?}");
    let finished: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["event"] == "job.finished")
        .map(|e| (e["job"].to_string(), e["status"].to_string()))
        .collect();
    assert_eq!(
        finished,
        vec![("\"pipeline/slow\"".to_owned(), "\"canceled\"".to_owned())],
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e["line"] == "never"), "{events:?}");
    assert_eq!(
        events.last().map(|e| e["status"].clone()),
        Some("canceled".into())
    );
    assert_eq!(leftovers(&events), Vec::<String>::new());
}
