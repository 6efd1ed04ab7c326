//! Artifacts and cache (SPEC §11) on the real Docker engine, a real Postgres and a real
//! object store: files a job keeps (globs, a symlink that leaves the workspace named in the
//! log, `artifact.emitted`), downloads through the gateway (`ETag`, `If-None-Match`, `Range`,
//! `416`, `artifacts.tar`, `410` once expired, and the sweeper deleting the bytes), a
//! downstream job on another runner host that gets them checked by sha256, the upload's
//! `422`s, and a cache saved after a success, restored by the next run, never overwritten, and
//! kept apart between protected and unprotected refs.

use crate::helpers::{Options, TestApp, image, job_named, no_runner, spawn_with};
use crate::procs::runner_process_with;
use gitweave_api::public::{ArtifactList, Run};
use gitweave_model::status::{EventType, RunStatus};
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(120);

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn ok_run(app: &TestApp, repo: &str, body: serde_json::Value) -> Run {
    let run = app.trigger(repo, &body).await;
    let run = app.wait_run(run.id, LIMIT).await;
    if run.status != RunStatus::Success {
        for j in &run.jobs {
            eprintln!(
                "--- {} ---\n{}",
                j.name,
                String::from_utf8_lossy(&app.raw_log(j.id).await)
            );
        }
        panic!("run {} ended {:?}: {run:#?}", run.id, run.status);
    }
    run
}

async fn log_of(app: &TestApp, job: Uuid) -> String {
    String::from_utf8_lossy(&app.raw_log(job).await).into_owned()
}

fn build_template() -> String {
    format!(
        r#"jobs:
  - name: build
    image: {image}
    artifacts:
      paths: ["dist/**", "report.txt"]
      expire_in: 1h
    script:
      - mkdir -p dist/sub
      - printf 'hello artifacts\n' > dist/a.txt
      - head -c 3000000 /dev/urandom > dist/sub/b.bin
      - ln -s /etc/passwd dist/out
      - echo report > report.txt
      - echo not kept > other.txt
  - name: use
    image: {image}
    needs: [build]
    script:
      - cat dist/a.txt
      - sha256sum dist/sub/b.bin
"#,
        image = image()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_keeps_its_files_and_they_download_with_etag_range_and_tar() {
    let app = spawn_with(Options::default()).await;
    app.repo_with("art-keep", "art-keep", &build_template())
        .await;
    let run = ok_run(&app, "art-keep", json!({})).await;
    let build = job_named(&run, "build").id;

    // The log says which link was not followed and what was stored.
    let log = log_of(&app, build).await;
    assert!(
        log.contains("dist/out -> /etc/passwd leaves the workspace; not followed"),
        "{log}"
    );
    assert!(
        log.contains("[gitweave] artifacts: stored 3 files ("),
        "{log}"
    );

    let list: ArtifactList =
        serde_json::from_value(app.get_json(&format!("/jobs/{build}/artifacts")).await)
            .expect("artifact list");
    let paths: Vec<&str> = list.artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["dist/a.txt", "dist/sub/b.bin", "report.txt"]);
    let a = &list.artifacts[0];
    assert_eq!(a.size, 16);
    assert_eq!(a.sha256, sha256_hex(b"hello artifacts\n"));

    // One artifact.emitted per file, with its path, size and sha256.
    let events = app.events(run.id).await;
    let emitted: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EventType::ArtifactEmitted.as_str())
        .collect();
    assert_eq!(emitted.len(), 3, "{events:#?}");
    for (e, listed) in emitted.iter().zip(&list.artifacts) {
        let data = e.data.clone().expect("data");
        assert_eq!(e.job_id, Some(build));
        assert_eq!(data["path"], listed.path);
        assert_eq!(data["size"], listed.size);
        assert_eq!(data["sha256"], listed.sha256);
    }

    // The bytes, with the sha256 as ETag; If-None-Match; a Range; one past the end.
    let r = app
        .get(&format!("/jobs/{build}/artifacts/dist/a.txt"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(etag, format!("\"{}\"", a.sha256));
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        b"hello artifacts\n"
    );
    let url = app.api(&format!("/jobs/{build}/artifacts/dist/a.txt"));
    let r = app
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = app
        .http
        .get(&url)
        .header("range", "bytes=6-14")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 6-14/16");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"artifacts");
    let r = app
        .http
        .get(&url)
        .header("range", "bytes=16-")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */16");
    let r = app.get(&format!("/jobs/{build}/artifacts/other.txt")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The 3 MB file arrives whole, and artifacts.tar holds every file under its path.
    let big = app
        .get(&format!("/jobs/{build}/artifacts/dist/sub/b.bin"))
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(big.len(), 3_000_000);
    assert_eq!(sha256_hex(&big), list.artifacts[1].sha256);
    let tar = app
        .get(&format!("/jobs/{build}/artifacts.tar"))
        .await
        .bytes()
        .await
        .expect("tar");
    let mut archive = tar::Archive::new(&tar[..]);
    let mut got = Vec::new();
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut content).expect("read");
        got.push((path, sha256_hex(&content)));
    }
    let want: Vec<(String, String)> = list
        .artifacts
        .iter()
        .map(|a| (a.path.clone(), a.sha256.clone()))
        .collect();
    assert_eq!(got, want);

    // The downstream job on the same runner found them in its workspace.
    let use_log = log_of(&app, job_named(&run, "use").id).await;
    assert!(use_log.contains("hello artifacts"), "{use_log}");
    assert!(use_log.contains(&list.artifacts[1].sha256), "{use_log}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_downstream_job_on_another_host_gets_the_files_checked_by_sha256() {
    // Two runner hosts that share nothing: their own work dirs, host ids and container
    // prefixes (so their own workspace volumes); the labels put each job on one of them.
    let app = spawn_with(no_runner()).await;
    let short = &Uuid::new_v4().simple().to_string()[..8];
    let dirs: Vec<_> = ["a", "b"]
        .iter()
        .map(|h| std::env::temp_dir().join(format!("gitweave-art-{short}-{h}")))
        .collect();
    let mut runners = Vec::new();
    for (h, dir) in ["a", "b"].iter().zip(&dirs) {
        let prefix = format!("{}{h}-", app.prefix);
        runners.push(runner_process_with(
            app.pipeline_url(),
            &format!("{}-{h}", app.runner_name),
            &prefix,
            &[
                ("RUNNER_WORKDIR", dir.to_str().expect("utf-8")),
                ("RUNNER_HOST_ID", &format!("host-{h}-{short}")),
                ("RUNNER_LABELS", &format!("host={h}")),
            ],
        ));
    }
    let yaml = format!(
        r#"jobs:
  - name: build
    image: {image}
    runs_on: {{ host: a }}
    artifacts: {{ paths: [out/**] }}
    script:
      - mkdir -p out/deep
      - head -c 2000000 /dev/urandom > out/deep/data.bin
      - sha256sum out/deep/data.bin > out/sum.txt
  - name: check
    image: {image}
    runs_on: {{ host: b }}
    needs: [build]
    script:
      - cat out/sum.txt
      - sha256sum -c out/sum.txt
"#,
        image = image()
    );
    app.repo_with("art-hosts", "art-hosts", &yaml).await;
    let run = ok_run(&app, "art-hosts", json!({})).await;
    let check = log_of(&app, job_named(&run, "check").id).await;
    assert!(
        check.contains("[gitweave] artifacts: fetched 2 files (")
            && check.contains("out/deep/data.bin: OK"),
        "{check}"
    );
    drop(runners);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    // Both hosts' workspace volumes go with their prefixes.
    for h in ["a", "b"] {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker volume ls -q | grep '^{}{h}-' | xargs -r docker volume rm -f",
                app.prefix
            ))
            .output();
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_artifact_and_cache_declarations_are_refused_at_upload() {
    let app = spawn_with(no_runner()).await;
    for (extra, says) in [
        ("artifacts: { paths: [/etc/passwd] }", "is absolute"),
        ("artifacts: { paths: [../up] }", "holds \\\"..\\\""),
        ("artifacts: { paths: [x], expire_in: 3w }", "expire_in"),
        ("cache: { key: k, paths: [/root/.cargo] }", "is absolute"),
        ("cache: { key: k, paths: [a/../../b] }", "holds \\\"..\\\""),
    ] {
        let yaml = format!(
            "jobs:\n  - name: j\n    image: {}\n    script: [true]\n    {extra}\n",
            image()
        );
        let r = app.put_template("bad-art", &yaml).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{extra}");
        let body = r.text().await.expect("body");
        assert!(body.contains(says), "{extra}: {body}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_artifact_is_gone_and_the_sweeper_deletes_its_bytes() {
    // A store of this test's own, swept every second with no grace.
    let app = spawn_with(Options {
        pipeline: Some(|c| {
            c.object_store = Some(format!("file://{}", expiring_store().display()));
            c.sweep_interval_s = 1;
            c.object_grace_s = 0;
        }),
        ..Options::default()
    })
    .await;
    let yaml = format!(
        "jobs:\n  - name: j\n    image: {}\n    artifacts: {{ paths: [f.txt], expire_in: 3s }}\n    script: [\"echo gone soon > f.txt\"]\n",
        image()
    );
    app.repo_with("art-expire", "art-expire", &yaml).await;
    let run = ok_run(&app, "art-expire", json!({})).await;
    let job = job_named(&run, "j").id;
    let list: ArtifactList =
        serde_json::from_value(app.get_json(&format!("/jobs/{job}/artifacts")).await)
            .expect("list");
    let sha = list.artifacts[0].sha256.clone();
    let object = expiring_store().join("sha256").join(&sha[..2]).join(&sha);
    assert!(object.exists(), "{} is not in the store", object.display());
    // The expiry is three seconds after the upload.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = app.get(&format!("/jobs/{job}/artifacts/f.txt")).await;
    assert_eq!(r.status(), StatusCode::GONE);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("artifact_expired") && body.contains("expired at"),
        "{body}"
    );
    assert_eq!(
        app.get(&format!("/jobs/{job}/artifacts.tar"))
            .await
            .status(),
        StatusCode::GONE
    );
    // Still listed, with its expiry.
    let list: ArtifactList =
        serde_json::from_value(app.get_json(&format!("/jobs/{job}/artifacts")).await)
            .expect("list");
    assert_eq!(list.artifacts.len(), 1);
    // The sweeper deletes the bytes from the store; the answer stays 410.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while object.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper left {}",
            object.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = app.get(&format!("/jobs/{job}/artifacts/f.txt")).await;
    assert_eq!(r.status(), StatusCode::GONE);
    app.shutdown().await;
}

/// The object store of the expiry test: its sweeper deletes what its database does not name,
/// so it shares no store with the other tests, nor with another test process on the machine.
fn expiring_store() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "gitweave-test-expiring-objects-{}",
        std::process::id()
    ))
}

fn cache_template() -> String {
    format!(
        r#"jobs:
  - name: deps
    image: {image}
    cache: {{ key: deps-v1, paths: [deps, nested/dir] }}
    script:
      - if [ -f deps/marker ]; then echo "HIT $(cat deps/marker) $(cat nested/dir/x)"; else echo MISS; fi
      - mkdir -p deps nested/dir
      - echo "$GITWEAVE_REF" > deps/marker
      - echo nested > nested/dir/x
"#,
        image = image()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_is_restored_by_the_next_run_never_overwritten_and_kept_apart_by_protection() {
    let app = spawn_with(Options::default()).await;
    app.repo_with("art-cache", "art-cache", &cache_template())
        .await;
    let run_on = |git_ref: &'static str| {
        let app = &app;
        async move {
            let run = ok_run(app, "art-cache", json!({ "ref": git_ref })).await;
            log_of(app, job_named(&run, "deps").id).await
        }
    };
    // A branch (unprotected): miss, saved; the next run of it restores it.
    let first = run_on("refs/heads/feature").await;
    assert!(first.contains("MISS"), "{first}");
    assert!(first.contains("[gitweave] cache: saved deps-v1"), "{first}");
    let second = run_on("refs/heads/feature").await;
    assert!(second.contains("HIT refs/heads/feature nested"), "{second}");
    assert!(
        second.contains("[gitweave] cache: restored deps-v1 ("),
        "{second}"
    );
    // The entry exists: the second run did not write it again.
    assert!(!second.contains("cache: saved"), "{second}");

    // The default branch is protected: it never restores what the branch wrote, and saves
    // its own; a branch run then still restores its own scope's entry first.
    let main = run_on("refs/heads/main").await;
    assert!(main.contains("MISS"), "{main}");
    assert!(main.contains("[gitweave] cache: saved deps-v1"), "{main}");
    let again = run_on("refs/heads/main").await;
    assert!(again.contains("HIT refs/heads/main"), "{again}");
    let branch = run_on("refs/heads/feature").await;
    assert!(branch.contains("HIT refs/heads/feature"), "{branch}");
    app.shutdown().await;
}

/// `git` in `dir`, which must succeed; its stdout.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit_file(dir: &std::path::Path, file: &str, content: &str) -> String {
    std::fs::write(dir.join(file), content).expect("write");
    git(dir, &["add", file]);
    git(dir, &["commit", "-q", "-m", file]);
    git(dir, &["rev-parse", "HEAD"])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_files_key_follows_the_files_at_the_runs_commit() {
    let app = spawn_with(no_runner()).await;
    let dir = std::env::temp_dir().join(format!("gitweave-art-key-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    git(&dir, &["init", "-q", "-b", "main"]);
    let first = commit_file(&dir, "Cargo.lock", "v1\n");
    let readme = commit_file(&dir, "README", "unrelated\n");
    let bumped = commit_file(&dir, "Cargo.lock", "v2\n");
    app.put_json(
        "/repos/keys",
        &json!({ "clone_url": dir.to_str().expect("utf-8") }),
    )
    .await;
    let yaml = format!(
        "jobs:\n  - name: j\n    image: {}\n    script: [true]\n    cache: {{ key: {{ files: [Cargo.lock, missing.txt], prefix: cargo }}, paths: [target] }}\n",
        image()
    );
    app.template_ok("keys", &yaml).await;
    app.attach("keys", "keys").await;
    let token = crate::hand::runner_token(&app).await;
    let mut keys = Vec::new();
    for commit in [&first, &readme, &bumped] {
        app.trigger("keys", &json!({ "commit": commit })).await;
        let a = crate::hand::claim(&app, &token).await.expect("a job");
        let cache = a.cache.clone().expect("the assignment's cache");
        assert_eq!(cache.paths, ["target"]);
        assert!(cache.save && cache.restore.is_none(), "{cache:?}");
        keys.push(cache.key);
        crate::hand::finish(&app, &token, &a).await;
    }
    assert!(
        keys[0].starts_with("cargo-") && keys[0].len() == "cargo-".len() + 16,
        "{keys:?}"
    );
    // Another file changed: the same key; Cargo.lock changed: another.
    assert_eq!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    app.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_keeps_to_its_size_and_the_least_recently_used_entry_goes_first() {
    // Three entries of 24 KiB of random bytes (zstd cannot shrink them) in a repo that keeps
    // 60 KiB, swept every second.
    let app = spawn_with(Options {
        pipeline: Some(|c| {
            c.cache_max_bytes = 60 * 1024;
            c.sweep_interval_s = 1;
        }),
        ..Options::default()
    })
    .await;
    let yaml = format!(
        r#"inputs:
  k: {{ required: true }}
jobs:
  - name: j
    image: {image}
    cache: {{ key: "lru-${{{{ inputs.k }}}}", paths: [c] }}
    script:
      - if [ -f c/blob ]; then echo HIT; else echo MISS; mkdir -p c; head -c 24576 /dev/urandom > c/blob; fi
"#,
        image = image()
    );
    app.repo_with("lru", "lru", &yaml).await;
    let run_key = |k: &'static str| {
        let app = &app;
        async move {
            let run = ok_run(app, "lru", json!({ "inputs": { "k": k } })).await;
            log_of(app, job_named(&run, "j").id).await
        }
    };
    assert!(run_key("1").await.contains("MISS"));
    assert!(run_key("2").await.contains("MISS"));
    // 1 is used again: 2 is now the least recently used.
    assert!(run_key("1").await.contains("HIT"));
    assert!(run_key("3").await.contains("MISS"));
    // Three entries are more than 60 KiB: the next sweep evicts 2, and only 2.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let two = run_key("2").await;
    assert!(
        two.contains("MISS") && two.contains("nothing to restore for key lru-2"),
        "{two}"
    );
    assert!(run_key("3").await.contains("HIT"));
    assert!(run_key("1").await.contains("HIT"));
    app.shutdown().await;
}

/// `PUT` of `body` to a runner endpoint of the attempt `a` (`what`: `artifacts?path=…` or
/// `cache?key=…`), with `sha256` as the announced digest when given.
async fn put_as_runner(
    app: &TestApp,
    token: &str,
    a: &gitweave_api::runner::Assignment,
    what: &str,
    body: &'static [u8],
    sha256: Option<&str>,
) -> reqwest::Response {
    let mut rb = app
        .http
        .put(format!(
            "{}/internal/v1/jobs/{}/attempts/{}/{what}",
            app.pipeline, a.job_id, a.attempt
        ))
        .bearer_auth(token)
        .body(body);
    if let Some(s) = sha256 {
        rb = rb.header("x-gitweave-sha256", s);
    }
    rb.send().await.expect("PUT")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runner_endpoints_take_only_what_the_attempt_declares_and_holds() {
    let app = spawn_with(no_runner()).await;
    let yaml = |policy: &str| {
        format!(
            "jobs:\n  - name: j\n    image: {}\n    script: [true]\n    artifacts: {{ paths: [out/**] }}\n    cache: {{ key: proto, paths: [c], policy: {policy} }}\n",
            image()
        )
    };
    app.create_repo("proto").await;
    app.template_ok("proto", &yaml("pull-push")).await;
    app.attach("proto", "proto").await;
    let token = crate::hand::runner_token(&app).await;
    let other = crate::hand::token(
        &app,
        json!({"name": "other", "capacity": 1, "engine": "docker"}),
    )
    .await;

    app.trigger("proto", &json!({})).await;
    let a = crate::hand::claim(&app, &token).await.expect("a job");
    let cache = a.cache.clone().expect("cache");
    assert!(cache.save && cache.restore.is_none(), "{cache:?}");
    // An artifact: its digest checked; outside paths refused; another runner refused.
    let good = sha256_hex(b"data");
    let r = put_as_runner(
        &app,
        &token,
        &a,
        "artifacts?path=out/x",
        b"data",
        Some(&"0".repeat(64)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.expect("body").contains("digest_mismatch"));
    for bad in ["../x", "/etc/x", "out/./x", "out//x"] {
        let r = put_as_runner(
            &app,
            &token,
            &a,
            &format!("artifacts?path={bad}"),
            b"data",
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let r = put_as_runner(&app, &other, &a, "artifacts?path=out/x", b"data", None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = put_as_runner(
        &app,
        &token,
        &a,
        "artifacts?path=out/x",
        b"data",
        Some(&good),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // The cache: only the job's own key; once.
    let r = put_as_runner(&app, &token, &a, "cache?key=other", b"zz", None).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = put_as_runner(&app, &token, &a, "cache?key=proto", b"zz", None).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = put_as_runner(&app, &token, &a, "cache?key=proto", b"yy", None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // An input that is no file of the run is not served.
    let r = app
        .http
        .get(format!(
            "{}/internal/v1/jobs/{}/attempts/{}/inputs/{}",
            app.pipeline,
            a.job_id,
            a.attempt,
            sha256_hex(b"not stored")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    crate::hand::finish(&app, &token, &a).await;
    // After its end the attempt takes nothing more.
    let r = put_as_runner(&app, &token, &a, "artifacts?path=out/y", b"late", None).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // pull: restores, never saves; push: saves only while the key has no entry, never restores.
    app.template_ok("proto", &yaml("pull")).await;
    app.trigger("proto", &json!({})).await;
    let b = crate::hand::claim(&app, &token).await.expect("a job");
    let cache = b.cache.clone().expect("cache");
    assert!(!cache.save, "{cache:?}");
    assert_eq!(
        cache.restore.as_ref().map(|r| r.sha256.clone()),
        Some(sha256_hex(b"zz"))
    );
    crate::hand::finish(&app, &token, &b).await;
    app.template_ok("proto", &yaml("push")).await;
    app.trigger("proto", &json!({})).await;
    let c = crate::hand::claim(&app, &token).await.expect("a job");
    let cache = c.cache.clone().expect("cache");
    assert!(!cache.save && cache.restore.is_none(), "{cache:?}");
    crate::hand::finish(&app, &token, &c).await;
    app.shutdown().await;
}
