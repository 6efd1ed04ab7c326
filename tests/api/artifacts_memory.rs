//! A 2 GiB artifact never sits in memory (SPEC §11): the three services run as the real
//! binaries, a job keeps a 2 GiB file, it is streamed from the job's workspace through the
//! runner into pipeline-svc's object store and back out through the gateway, and every
//! service's peak resident set (`VmHWM`) stays under 64 MiB.

use crate::helpers::{Proc, free_port, fresh_database, image};
use crate::procs::{
    ProcApi, gateway_process_logged, pipeline_process_logged, runner_process_logged, wait_ready,
};
use futures::StreamExt;
use gitweave_model::status::RunStatus;
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

/// Peak resident memory each service may reach while the file moves.
const PEAK_RSS_LIMIT_KIB: u64 = 64 * 1024;
const SIZE: u64 = 2 << 30;

/// `VmHWM` (peak resident set) in KiB.
fn peak_rss_kib(p: &Proc) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.0.id()))
        .expect("the service is still running");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2_gib_artifact_moves_with_every_service_under_64_mib() {
    let short = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let dir = std::env::temp_dir().join(format!("gitweave-art-mem-{short}"));
    std::fs::create_dir_all(&dir).expect("test dir");
    let store = dir.join("objects");
    let db = fresh_database().await;
    let (pport, gport) = (free_port(), free_port());
    let pipeline = format!("http://127.0.0.1:{pport}");
    let store_url = format!("file://{}", store.display());
    let psvc = pipeline_process_logged(
        &db,
        pport,
        &[("PIPELINE_OBJECT_STORE", &store_url)],
        &dir.join("pipeline.log"),
    );
    wait_ready(&pipeline).await;
    let prefix = format!("gwt{short}-");
    let runner = runner_process_logged(
        &pipeline,
        &format!("test-runner-{short}"),
        &prefix,
        &[("RUNNER_WORKDIR", dir.join("work").to_str().expect("utf-8"))],
        &dir.join("runner.log"),
    );
    let gateway = gateway_process_logged(&pipeline, gport, &[], &dir.join("gateway.log"));
    wait_ready(&format!("http://127.0.0.1:{gport}")).await;
    let gw = ProcApi::new(&format!("http://127.0.0.1:{gport}"));
    let yaml = format!(
        "jobs:\n  - name: big\n    image: {}\n    timeout: 10m\n    artifacts: {{ paths: [big.bin], expire_in: 1h }}\n    script: [\"dd if=/dev/zero of=big.bin bs=1048576 count={} 2>/dev/null\"]\n",
        image(),
        SIZE >> 20
    );
    gw.setup("mem", &yaml).await;
    let run = gw.run("mem", Duration::from_secs(600)).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let job = run.jobs[0].id;
    let list = gw.artifacts(job).await;
    assert_eq!(list.artifacts.len(), 1);
    assert_eq!(list.artifacts[0].size, SIZE);

    // Out again through the gateway, streamed and hashed here.
    let r = gw
        .http
        .get(format!("{}/jobs/{job}/artifacts/big.bin", gw.api))
        .send()
        .await
        .expect("download");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let mut body = r.bytes_stream();
    let (mut hash, mut len) = (Sha256::new(), 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        hash.update(&chunk);
        len += chunk.len() as u64;
    }
    assert_eq!(len, SIZE);
    let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, list.artifacts[0].sha256);

    for (name, p) in [
        ("pipeline-svc", &psvc),
        ("runner-svc", &runner),
        ("api-gateway", &gateway),
    ] {
        let peak = peak_rss_kib(p);
        eprintln!("{name}: peak RSS {} MiB", peak / 1024);
        assert!(
            peak < PEAK_RSS_LIMIT_KIB,
            "{name} peaked at {peak} KiB moving a 2 GiB artifact (limit {PEAK_RSS_LIMIT_KIB} KiB)"
        );
    }
    drop((gateway, runner, psvc));
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker volume ls -q | grep '^{prefix}' | xargs -r docker volume rm -f"
        ))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
}
