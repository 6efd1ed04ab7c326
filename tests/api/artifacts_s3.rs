//! Artifacts and cache in an S3-compatible store (SPEC §11): pipeline-svc as the real binary
//! with `PIPELINE_OBJECT_STORE=s3://bucket/prefix` and the usual `AWS_*` variables, against
//! moto in server mode on loopback (started here), a real docker runner: a kept file
//! downloads whole, a cache saved by one run is restored by the next, and the objects are in
//! the bucket under the prefix.

use crate::helpers::{Proc, free_port, fresh_database, image};
use crate::procs::{ProcApi, pipeline_process_logged, runner_process_logged, wait_ready};
use gitweave_model::status::RunStatus;
use std::process::{Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

const BUCKET: &str = "gitweave-e2e";

/// moto on a free loopback port, or why not.
async fn start_moto() -> Option<(Proc, String)> {
    let found = Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("GITWEAVE_SKIP_S3").as_deref() == Ok("1") {
            eprintln!(
                "SKIPPING the S3 artifacts test: moto_server is not on PATH and GITWEAVE_SKIP_S3=1"
            );
            return None;
        }
        panic!(
            "moto_server is not on PATH (pip install 'moto[server]'; scripts/test installs it), or set GITWEAVE_SKIP_S3=1"
        );
    }
    let port = free_port();
    // In a Proc at once: killed and waited for however the test ends.
    let moto = Proc(
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(&endpoint)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            let r = http
                .put(format!("{endpoint}/{BUCKET}"))
                .send()
                .await
                .expect("create the bucket");
            assert!(r.status().is_success(), "bucket: {}", r.status());
            return Some((moto, endpoint));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not answer on {endpoint}");
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_and_cache_live_in_an_s3_bucket() {
    let Some((_moto, endpoint)) = start_moto().await else {
        return;
    };
    let short = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let dir = std::env::temp_dir().join(format!("gitweave-art-s3-{short}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = fresh_database().await;
    let port = free_port();
    let pipeline = format!("http://127.0.0.1:{port}");
    let store = format!("s3://{BUCKET}/run-{short}");
    let _psvc = pipeline_process_logged(
        &db,
        port,
        &[
            ("PIPELINE_OBJECT_STORE", &store),
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
        &dir.join("pipeline.log"),
    );
    wait_ready(&pipeline).await;
    let prefix = format!("gwt{short}-");
    let _runner = runner_process_logged(
        &pipeline,
        &format!("test-runner-{short}"),
        &prefix,
        &[("RUNNER_WORKDIR", dir.join("work").to_str().expect("utf-8"))],
        &dir.join("runner.log"),
    );
    let p = ProcApi::new(&pipeline);
    let yaml = format!(
        r#"jobs:
  - name: j
    image: {image}
    artifacts: {{ paths: [out.bin] }}
    cache: {{ key: s3-cache, paths: [c] }}
    script:
      - if [ -f c/x ]; then echo "HIT $(cat c/x)"; else echo MISS; mkdir -p c; echo cached > c/x; fi
      - head -c 9000000 /dev/urandom > out.bin
"#,
        image = image()
    );
    p.setup("s3", &yaml).await;
    let mut logs = Vec::new();
    let mut last = None;
    for _ in 0..2 {
        let run = p.run("s3", Duration::from_secs(120)).await;
        let log = p.log(run.jobs[0].id).await;
        assert_eq!(run.status, RunStatus::Success, "{log}");
        logs.push(log);
        last = Some(run.jobs[0].id);
    }
    assert!(
        logs[0].contains("MISS") && logs[0].contains("cache: saved s3-cache"),
        "{}",
        logs[0]
    );
    assert!(
        logs[1].contains("HIT cached") && logs[1].contains("cache: restored s3-cache"),
        "{}",
        logs[1]
    );

    // The 9 MB file (two multipart parts) downloads whole, with its digest.
    let job = last.expect("a job");
    let list = p.artifacts(job).await;
    let a = &list.artifacts[0];
    let bytes = p
        .http
        .get(format!("{}/jobs/{job}/artifacts/out.bin", p.api))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.len() as u64, a.size);
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(digest, a.sha256);
    // It is in the bucket, under the prefix, by its sha256.
    let listing = p
        .http
        .get(format!(
            "{endpoint}/{BUCKET}?list-type=2&prefix=run-{short}/"
        ))
        .send()
        .await
        .expect("list the bucket")
        .text()
        .await
        .expect("listing");
    assert!(
        listing.contains(&format!(
            "run-{short}/sha256/{}/{}",
            &a.sha256[..2],
            a.sha256
        )),
        "{listing}"
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker volume ls -q | grep '^{prefix}' | xargs -r docker volume rm -f"
        ))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
}
