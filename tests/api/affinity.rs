//! Workspace affinity (SPEC §13): the jobs of a run go to the runner host holding its
//! workspace; when that host is lost, the next job runs on another host, on a workspace made
//! again from the checkout and the artifacts it depends on. Two real runner processes that
//! share nothing: their own work dirs, host ids and container prefixes (so their own
//! workspace volumes), on the real Docker engine.

use crate::helpers::{Options, Proc, TestApp, image, job_named, no_runner, spawn_with};
use crate::procs::runner_process_with;
use gitweave_api::public::Run;
use gitweave_model::status::{JobStatus, RunStatus};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(120);

/// Two runner hosts, `a` and `b`, each with one runner; their names end in `-a` and `-b`.
struct Hosts {
    runners: Vec<Option<Proc>>,
    dirs: Vec<std::path::PathBuf>,
    prefixes: Vec<String>,
}

impl Hosts {
    fn start(app: &TestApp) -> Hosts {
        let short = &Uuid::new_v4().simple().to_string()[..8];
        let mut hosts = Hosts {
            runners: Vec::new(),
            dirs: Vec::new(),
            prefixes: Vec::new(),
        };
        for h in ["a", "b"] {
            let dir = std::env::temp_dir().join(format!("gitweave-aff-{short}-{h}"));
            let prefix = format!("{}{h}-", app.prefix);
            hosts.runners.push(Some(runner_process_with(
                app.pipeline_url(),
                &format!("{}-{h}", app.runner_name),
                &prefix,
                &[
                    ("RUNNER_WORKDIR", dir.to_str().expect("utf-8")),
                    ("RUNNER_HOST_ID", &format!("host-{h}-{short}")),
                    ("RUNNER_CONCURRENCY", "2"),
                ],
            )));
            hosts.dirs.push(dir);
            hosts.prefixes.push(prefix);
        }
        hosts
    }

    /// Kills host `i`'s runner at once (SIGKILL: no goodbye to pipeline-svc).
    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.runners[i].take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.runners.clear();
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        // A killed runner leaves its warm sandboxes running: its containers go first, then
        // both hosts' workspace volumes.
        for p in &self.prefixes {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "docker ps -aq --filter 'name=^/{p}' | xargs -r docker rm -f -v; \
                     docker volume ls -q | grep '^{p}' | xargs -r docker volume rm -f"
                ))
                .output();
        }
    }
}

/// Which runner started each job of the run (its last attempt), by job name.
async fn started_by(app: &TestApp, run: Uuid) -> BTreeMap<Uuid, String> {
    app.events(run)
        .await
        .into_iter()
        .filter(|e| e.event_type == "job.started")
        .filter_map(|e| Some((e.job_id?, e.actor)))
        .collect()
}

/// Fails, showing every job's log, unless the run succeeded.
async fn assert_success(app: &TestApp, run: &Run) {
    if run.status != RunStatus::Success {
        let mut all = String::new();
        for j in &run.jobs {
            all.push_str(&format!(
                "--- {} ---\n{}\n",
                j.name,
                String::from_utf8_lossy(&app.raw_log(j.id).await)
            ));
        }
        panic!("run ended {:?}: {run:#?}\n{all}", run.status);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_jobs_of_a_run_stay_on_the_host_holding_its_workspace() {
    let app = spawn_with(no_runner()).await;
    let hosts = Hosts::start(&app);
    // `note.txt` is no artifact: only the host whose workspace holds it has it, so a later
    // job on the other host would fail. Both hosts are idle with free slots all along.
    let yaml = format!(
        r#"jobs:
  - name: write
    image: {image}
    script: ["echo from-write > note.txt"]
  - name: read
    image: {image}
    needs: [write]
    script: ["cat note.txt", "echo from-read >> note.txt"]
  - name: again
    image: {image}
    needs: [read]
    script: ["grep from-read note.txt"]
  - name: beside
    image: {image}
    needs: [write]
    script: ["cat note.txt"]
"#,
        image = image()
    );
    app.repo_with("aff", "aff", &yaml).await;
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let run = app.trigger("aff", &json!({})).await;
        let run = app.wait_run(run.id, LIMIT).await;
        assert_success(&app, &run).await;
        let by = started_by(&app, run.id).await;
        let runners: std::collections::BTreeSet<_> = by.values().cloned().collect();
        assert_eq!(by.len(), 4, "{by:?}");
        assert_eq!(runners.len(), 1, "one host ran the whole run: {by:?}");
        used.extend(runners);
    }
    eprintln!("runs went to {used:?}");
    drop(hosts);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_host_is_lost_the_next_job_runs_elsewhere_on_a_rebuilt_workspace() {
    // Short leases: a killed host is offline after 2 s plus the 5 s a runner may go unseen.
    let app = spawn_with(Options {
        lease_ms: 2_000,
        reaper_interval_ms: 200,
        ..no_runner()
    })
    .await;
    let mut hosts = Hosts::start(&app);
    let yaml = format!(
        r#"jobs:
  - name: build
    image: {image}
    artifacts: {{ paths: [out.txt] }}
    script: ["echo built-here > out.txt", "echo scratch > scratch.txt"]
  - name: ship
    image: {image}
    needs: [build]
    when: manual
    script: ["cat out.txt", "test ! -e scratch.txt"]
"#,
        image = image()
    );
    app.repo_with("aff-lost", "aff-lost", &yaml).await;
    let run = app.trigger("aff-lost", &json!({})).await;
    let blocked = app.wait_status(run.id, RunStatus::Blocked, LIMIT).await;
    assert_eq!(job_named(&blocked, "ship").status, JobStatus::Manual);
    let build = job_named(&blocked, "build").id;
    let builder = started_by(&app, run.id).await[&build].clone();
    let lost = usize::from(builder.ends_with("-b"));
    hosts.kill(lost);

    let r = app
        .post_json(
            &format!("/jobs/{}/approve", job_named(&blocked, "ship").id),
            &json!({"reason": "ship it"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let done = app.wait_run(run.id, LIMIT).await;
    assert_success(&app, &done).await;
    let by = started_by(&app, run.id).await;
    let shipper = &by[&job_named(&done, "ship").id];
    assert_ne!(shipper, &builder, "the lost host cannot have run it");
    // Its workspace was made again: the artifact fetched and checked, the scratch file that
    // only the lost host had is not there.
    let log = String::from_utf8_lossy(&app.raw_log(job_named(&done, "ship").id).await).into_owned();
    assert!(
        log.contains("[gitweave] artifacts: fetched 1 files (") && log.contains("built-here"),
        "{log}"
    );
    drop(hosts);
    app.shutdown().await;
}
