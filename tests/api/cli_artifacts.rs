//! `gitweave artifacts` against the real stack: the list, one file (`--get`, to its file
//! name, to `-o FILE`, to stdout), the tar (`--all`), the server's 404 and 410, and a
//! download whose bytes do not hash to the listed sha256 leaving no file behind.
//!
//! The files are uploaded by a runner driven by hand over the runner protocol, so these tests
//! depend on pipeline-svc's artifact store only; the last test lets a real runner collect them.

use crate::cli::{gitweave_in, stdout};
use crate::hand;
use crate::helpers::{TestApp, image, no_runner, spawn_with};
use assert_cmd::assert::Assert;
use gitweave_api::public::ArtifactList;
use gitweave_api::runner::Assignment;
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// A fresh directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("gitweave-art-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }

    /// The names of what the directory holds, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stderr(a: &Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

async fn cli(app: &TestApp, dir: &Path, args: &[&str]) -> Assert {
    gitweave_in(app, Some(dir), args).await
}

/// Uploads `bytes` as the artifact `path` of the attempt `a`.
async fn upload(app: &TestApp, token: &str, a: &Assignment, path: &str, bytes: Vec<u8>) {
    let url = url::Url::parse_with_params(
        &format!(
            "{}/internal/v1/jobs/{}/attempts/{}/artifacts",
            app.pipeline, a.job_id, a.attempt
        ),
        [("path", path)],
    )
    .expect("the upload URL");
    let r = app
        .http
        .put(url)
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// Where the default local object store keeps the object `sha256`.
fn object_file(sha256: &str) -> PathBuf {
    let url = pipeline_svc::Config::for_database(String::new()).object_store_url();
    let root = url.strip_prefix("file://").expect("a local object store");
    Path::new(root)
        .join("sha256")
        .join(&sha256[..2])
        .join(sha256)
}

#[tokio::test]
async fn artifacts_lists_downloads_and_checks_what_a_job_kept() {
    let app = spawn_with(no_runner()).await;
    let img = image();
    app.repo_with(
        "art",
        "art",
        &format!(
            "jobs:\n  - name: build\n    image: {img}\n    script: [\"true\"]\n    artifacts: {{paths: [\"out/**\"]}}\n  - name: brief\n    image: {img}\n    script: [\"true\"]\n    artifacts: {{paths: [\"log.txt\"], expire_in: 1s}}\n"
        ),
    )
    .await;
    let run = app.trigger("art", &serde_json::json!({})).await;
    let token = hand::runner_token(&app).await;
    // Unique bytes: the store is content-addressed and shared by the tests.
    let a_txt = format!("a {}\n", Uuid::new_v4());
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut build = None;
    for _ in 0..2 {
        let a = hand::claim(&app, &token).await.expect("a job to claim");
        if a.name.ends_with("build") {
            upload(&app, &token, &a, "out/a.txt", a_txt.clone().into_bytes()).await;
            upload(&app, &token, &a, "out/sub dir/big#1.bin", big.clone()).await;
            build = Some(a.job_id);
        } else {
            upload(&app, &token, &a, "log.txt", b"short-lived".to_vec()).await;
        }
        hand::finish(&app, &token, &a).await;
    }
    let build = build.expect("the build job was claimed");
    let short = gitweave_model::short_id::short(build);
    let here = Dir::new();

    // The list, as text and as JSON; `RUN JOB-NAME` names the same job.
    let text = stdout(&cli(&app, &here.0, &["artifacts", &short]).await.code(0));
    let listed: ArtifactList = serde_json::from_str(&stdout(
        &cli(
            &app,
            &here.0,
            &["--json", "artifacts", &run.id.to_string(), "build"],
        )
        .await
        .code(0),
    ))
    .expect("an artifact list");
    let paths: Vec<&str> = listed.artifacts.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["out/a.txt", "out/sub dir/big#1.bin"], "{listed:?}");
    let a = &listed.artifacts[0];
    assert_eq!(a.size, a_txt.len() as u64);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("PATH") && lines[0].contains("SHA256"),
        "{text}"
    );
    assert!(lines[1].starts_with("out/a.txt"), "{text}");
    assert!(lines[1].contains(&format!("{} B", a_txt.len())), "{text}");
    assert!(lines[1].contains(&a.sha256[..12]), "{text}");
    assert!(lines[2].contains("2.9 KiB"), "{text}");

    // One file, to its file name here; then to -o; then to stdout.
    let got = cli(&app, &here.0, &["artifacts", &short, "--get", "out/a.txt"])
        .await
        .code(0);
    assert!(
        stdout(&got).contains("saved out/a.txt to a.txt"),
        "{}",
        stdout(&got)
    );
    assert_eq!(
        std::fs::read_to_string(here.0.join("a.txt")).expect("a.txt"),
        a_txt
    );
    let to = here.0.join("nested-big.bin");
    cli(
        &app,
        &here.0,
        &[
            "artifacts",
            &short,
            "--get",
            "out/sub dir/big#1.bin",
            "-o",
            to.to_str().expect("utf8"),
        ],
    )
    .await
    .code(0);
    assert_eq!(std::fs::read(&to).expect("the -o file"), big);
    let piped = cli(
        &app,
        &here.0,
        &["artifacts", &short, "--get", "out/a.txt", "-o", "-"],
    )
    .await
    .code(0);
    assert_eq!(stdout(&piped), a_txt);

    // All of them as a tar, by default named after the job.
    cli(&app, &here.0, &["artifacts", &short, "--all"])
        .await
        .code(0);
    let tar = std::fs::read(here.0.join(format!("job-{short}-artifacts.tar"))).expect("the tar");
    assert!(
        tar.starts_with(b"out/a.txt\0"),
        "the first entry is out/a.txt"
    );
    assert_eq!(&tar[512..512 + a_txt.len()], a_txt.as_bytes());
    assert!(
        tar.windows(big.len()).any(|w| w == big.as_slice()),
        "the tar holds big#1.bin's bytes"
    );
    assert_eq!(
        here.names(),
        [
            "a.txt",
            &format!("job-{short}-artifacts.tar"),
            "nested-big.bin"
        ],
        "no temporary file is left"
    );

    // Unknown path: the server's 404, exit 2, nothing written.
    let missing = Dir::new();
    let e = cli(
        &app,
        &missing.0,
        &["artifacts", &short, "--get", "out/none.txt"],
    )
    .await
    .code(2);
    assert!(
        stderr(&e).contains("404") && stderr(&e).contains("no artifact"),
        "{}",
        stderr(&e)
    );
    assert!(missing.names().is_empty(), "{:?}", missing.names());
    // -o without --get or --all is a mistake.
    let e = cli(&app, &missing.0, &["artifacts", &short, "-o", "x"])
        .await
        .code(2);
    assert!(stderr(&e).contains("--get PATH or --all"), "{}", stderr(&e));

    // Bytes that do not hash to the listed sha256: an error, and no file (nor its temporary).
    let object = object_file(&a.sha256);
    let mut wrong = a_txt.clone().into_bytes();
    wrong[0] ^= 1;
    std::fs::write(&object, &wrong).expect("overwrite the stored object");
    let corrupt = Dir::new();
    let e = cli(
        &app,
        &corrupt.0,
        &["artifacts", &short, "--get", "out/a.txt"],
    )
    .await
    .code(2);
    assert!(
        stderr(&e).contains("hash to") && stderr(&e).contains(&a.sha256),
        "{}",
        stderr(&e)
    );
    assert!(corrupt.names().is_empty(), "{:?}", corrupt.names());
    std::fs::write(&object, a_txt.as_bytes()).expect("restore the stored object");

    // Expired: listed as such, and the download is the server's 410.
    let brief = app
        .run(run.id)
        .await
        .jobs
        .into_iter()
        .find(|j| j.name.ends_with("brief"))
        .expect("the brief job")
        .id
        .to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let l: ArtifactList =
            serde_json::from_value(app.get_json(&format!("/jobs/{brief}/artifacts")).await)
                .expect("an artifact list");
        if l.artifacts[0].expires_at < time::OffsetDateTime::now_utc() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log.txt never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = stdout(&cli(&app, &here.0, &["artifacts", &brief]).await.code(0));
    assert!(text.contains("(expired)"), "{text}");
    let e = cli(&app, &missing.0, &["artifacts", &brief, "--get", "log.txt"])
        .await
        .code(2);
    assert!(
        stderr(&e).contains("410") && stderr(&e).contains("expired"),
        "{}",
        stderr(&e)
    );
    assert!(missing.names().is_empty(), "{:?}", missing.names());
}

#[tokio::test]
async fn a_real_runner_keeps_what_the_script_wrote() {
    let app = spawn_with(Default::default()).await;
    let img = image();
    app.repo_with(
        "kept",
        "kept",
        &format!(
            "jobs:\n  - name: build\n    image: {img}\n    script: [\"mkdir -p out\", \"echo hello > out/a.txt\"]\n    artifacts: {{paths: [\"out/**\"]}}\n"
        ),
    )
    .await;
    let run = app.trigger("kept", &serde_json::json!({})).await;
    let done = app.wait_run(run.id, Duration::from_secs(90)).await;
    assert_eq!(done.status.as_str(), "success", "{done:?}");
    let here = Dir::new();
    let id = run.id.to_string();
    let text = stdout(
        &cli(&app, &here.0, &["artifacts", &id, "build"])
            .await
            .code(0),
    );
    assert!(text.contains("out/a.txt") && text.contains("6 B"), "{text}");
    cli(
        &app,
        &here.0,
        &["artifacts", &id, "build", "--get", "out/a.txt"],
    )
    .await
    .code(0);
    assert_eq!(
        std::fs::read_to_string(here.0.join("a.txt")).expect("a.txt"),
        "hello\n"
    );
}
