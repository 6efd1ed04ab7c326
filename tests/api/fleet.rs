//! A fleet of runner hosts, for real (SPEC §13): every runner-svc runs in a network namespace
//! of its own (`ip netns` + veth), with its own address on a private bridge, its own work dir,
//! host id, labels and container prefix (so its own workspace volumes). pipeline-svc is a
//! process listening on the bridge's address, on a database of its own. A host is cut off with
//! `ip link set … down` on its end of the bridge, killed with SIGKILL and the removal of its
//! containers and namespace; pipeline-svc is killed and started again on the same address.
//!
//! Needs root (network namespaces) and the Docker engine: the jobs' containers are made by
//! each host's runner through the engine's socket, which a network namespace does not hide.

use crate::helpers::{Proc, containers_of_job, free_port, fresh_database, image};
use crate::procs::{ProcApi, pipeline_process_logged, runner_process_in, wait_ready};
use gitweave_api::public::{Event, Run};
use gitweave_model::status::{JobStatus, RunStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(180);
const ZONES: [&str; 3] = ["a", "b", "c"];

/// Runs `ip ARGS`, failing the test with what it printed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {} (network namespaces need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip ARGS` for cleaning up: what is already gone is fine.
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// A private bridge `10.231.N.1/24` and one network namespace per host on it
/// (`10.231.N.(10+i)`), each with its loopback up.
struct Net {
    tag: String,
    subnet: String,
    hosts: usize,
}

impl Net {
    fn new(hosts: usize) -> Net {
        // Unique among this process's tests and, very likely, among concurrent test processes.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() % 60) * 4 + NEXT.fetch_add(1, Ordering::SeqCst) % 4;
        let net = Net {
            tag: format!("gwf{n}"),
            subnet: format!("10.231.{n}"),
            hosts,
        };
        net.remove();
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.subnet),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..hosts {
            let (ns, outer, inner) = (net.netns(i), net.outer(i), net.inner(i));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&["link", "set", &outer, "master", &bridge, "up"]);
            let addr = format!("{}/24", net.host_addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    /// Host `i`'s namespace.
    fn netns(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }

    /// Host `i`'s end of the bridge (in the root namespace): its link.
    fn outer(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }

    fn inner(&self, i: usize) -> String {
        format!("{}p{i}", self.tag)
    }

    /// The address pipeline-svc listens on, in the root namespace.
    fn server_addr(&self) -> String {
        format!("{}.1", self.subnet)
    }

    fn host_addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, 10 + i)
    }

    /// Cuts host `i` off: its link goes down, its packets go nowhere.
    fn cut(&self, i: usize) {
        ip(&["link", "set", &self.outer(i), "down"]);
    }

    fn restore(&self, i: usize) {
        ip(&["link", "set", &self.outer(i), "up"]);
    }

    /// Removes host `i`'s namespace (with its end of the veth).
    fn remove_host(&self, i: usize) {
        ip_quiet(&["netns", "del", &self.netns(i)]);
    }

    fn remove(&self) {
        for i in 0..self.hosts {
            self.remove_host(i);
            ip_quiet(&["link", "del", &self.outer(i)]);
        }
        ip_quiet(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// pipeline-svc on the bridge, three runner hosts (zones `a`, `b`, `c`, one per namespace,
/// `RUNNER_CONCURRENCY=2` each), and the logs of them all in a directory of the test's.
struct Fleet {
    api: ProcApi,
    pipeline: Option<Proc>,
    pipeline_env: Vec<(String, String)>,
    db: String,
    port: u16,
    runners: Vec<Option<Proc>>,
    /// Runner names, by host: `fleet-<id>-<zone>`.
    names: Vec<String>,
    prefixes: Vec<String>,
    logs: PathBuf,
    // Dropped last: the runners are stopped (above) before their namespaces go.
    net: Net,
}

impl Fleet {
    /// `pipeline_env`: extra settings of pipeline-svc (leases, the reaper).
    async fn start(pipeline_env: &[(&str, &str)]) -> Fleet {
        let net = Net::new(ZONES.len());
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let logs = std::env::temp_dir().join(format!("gitweave-fleet-{id}"));
        std::fs::create_dir_all(&logs).expect("log dir");
        let port = free_port();
        let mut fleet = Fleet {
            api: ProcApi::new(&format!("http://{}:{port}", net.server_addr())),
            pipeline: None,
            pipeline_env: pipeline_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            db: fresh_database().await,
            port,
            runners: Vec::new(),
            names: Vec::new(),
            prefixes: Vec::new(),
            logs,
            net,
        };
        fleet.start_pipeline().await;
        let pipeline = format!("http://{}:{port}", fleet.net.server_addr());
        for (i, zone) in ZONES.iter().enumerate() {
            let name = format!("fleet-{id}-{zone}");
            let prefix = format!("gwf{id}{zone}-");
            let workdir = fleet.logs.join(format!("work-{zone}"));
            let host = format!("fleet-{id}-host-{zone}");
            let labels = format!("zone={zone}");
            let runner = runner_process_in(
                &fleet.net.netns(i),
                &pipeline,
                &name,
                &prefix,
                &[
                    ("RUNNER_WORKDIR", workdir.to_str().expect("utf-8")),
                    ("RUNNER_HOST_ID", &host),
                    ("RUNNER_LABELS", &labels),
                    ("RUNNER_CONCURRENCY", "2"),
                ],
                &fleet.runner_log(i),
            );
            fleet.runners.push(Some(runner));
            fleet.names.push(name);
            fleet.prefixes.push(prefix);
        }
        // Every host registered and online before a run is made.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let online: BTreeSet<String> = fleet
                .api
                .runners()
                .await
                .runners
                .into_iter()
                .filter(|r| r.status == "online")
                .map(|r| r.name)
                .collect();
            if fleet.names.iter().all(|n| online.contains(n)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not every host registered: {online:?}\n{}",
                fleet.all_logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        fleet
    }

    async fn start_pipeline(&mut self) {
        let addr = format!("{}:{}", self.net.server_addr(), self.port);
        let mut env: Vec<(&str, &str)> = vec![("PIPELINE_ADDR", &addr)];
        env.extend(
            self.pipeline_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        self.pipeline = Some(pipeline_process_logged(
            &self.db,
            self.port,
            &env,
            &self.logs.join("pipeline-svc.log"),
        ));
        wait_ready(&format!("http://{addr}")).await;
    }

    /// SIGKILL: no goodbye, no graceful drain.
    fn kill_pipeline(&mut self) {
        if let Some(mut p) = self.pipeline.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    fn runner_log(&self, i: usize) -> PathBuf {
        self.logs.join(format!("runner-{}.log", ZONES[i]))
    }

    /// The host whose runner is `actor` (`runner:<name>`).
    fn host_of(&self, actor: &str) -> usize {
        let name = actor.strip_prefix("runner:").unwrap_or(actor);
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{actor} is no runner of this fleet"))
    }

    /// Host `i` dies: its runner is SIGKILLed, its containers (the job's among them) go with
    /// it, and so does its network namespace.
    fn kill_host(&mut self, i: usize) {
        if let Some(mut p) = self.runners[i].take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
        remove_containers(&self.prefixes[i]);
        self.net.remove_host(i);
    }

    /// Everything the services logged, for a failure's message.
    fn all_logs(&self) -> String {
        let mut all = String::new();
        let mut files: Vec<_> = std::fs::read_dir(&self.logs)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "log"))
        {
            all.push_str(&format!(
                "--- {} ---\n{}\n",
                f.display(),
                std::fs::read_to_string(f).unwrap_or_default()
            ));
        }
        all
    }

    /// Fails, with every job's log and the services' logs, unless the run succeeded.
    async fn assert_success(&self, run: &Run) {
        if run.status != RunStatus::Success {
            let mut all = String::new();
            for j in &run.jobs {
                all.push_str(&format!(
                    "--- job {} ({:?}, attempt {}) ---\n{}\n",
                    j.name,
                    j.status,
                    j.attempt,
                    self.api.log(j.id).await
                ));
            }
            panic!("run ended {:?}\n{all}\n{}", run.status, self.all_logs());
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // SIGTERM, so that each runner removes its own sandboxes, before the namespaces go.
        self.runners.clear();
        self.pipeline = None;
        for p in &self.prefixes {
            remove_containers(p);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.logs);
        } else {
            eprintln!("fleet logs kept in {}", self.logs.display());
        }
    }
}

/// Removes every container named `prefix…` and every volume of that prefix.
fn remove_containers(prefix: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker ps -aq --filter 'name=^/{prefix}' | xargs -r docker rm -f -v; \
             docker volume ls -q | grep '^{prefix}' | xargs -r docker volume rm -f"
        ))
        .output();
}

/// The `job.started` events of a run: (job, attempt) → actor.
fn starts(events: &[Event]) -> BTreeMap<(uuid::Uuid, i32), String> {
    events
        .iter()
        .filter(|e| e.event_type == "job.started")
        .filter_map(|e| Some(((e.job_id?, e.attempt?), e.actor.clone())))
        .collect()
}

/// Polls the run's events (at most `limit`) until one satisfies `found`.
async fn wait_event(
    api: &ProcApi,
    run: uuid::Uuid,
    limit: Duration,
    found: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(e) = api.events(run).await.into_iter().find(|e| found(e)) {
            return e;
        }
        assert!(Instant::now() < deadline, "the event never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most `limit`) until job `job`'s stored log contains `text`.
async fn wait_log(api: &ProcApi, job: uuid::Uuid, text: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !api.log(job).await.contains(text) {
        assert!(Instant::now() < deadline, "the job never printed {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A job's name without its template's (`fleet-dag/l0-1` → `l0-1`).
fn bare(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Three layers of ten jobs; each job `runs_on` a zone other than that of the jobs it needs
/// (so every edge crosses hosts), passes its name on as an artifact, and checks the artifacts
/// of what it needs before writing its own. Returns the template and each job's zone.
fn dag(image: &str) -> (String, BTreeMap<String, &'static str>) {
    let mut yaml = String::from("jobs:\n");
    let mut zones = BTreeMap::new();
    for layer in 0..3usize {
        for i in 0..10usize {
            let name = format!("l{layer}-{i}");
            let needs: Vec<String> = match layer {
                0 => vec![],
                _ => vec![
                    format!("l{}-{i}", layer - 1),
                    format!("l{}-{}", layer - 1, (i + 1 + layer) % 10),
                ],
            };
            let zone = ZONES[(i + layer) % 3];
            let mut script: Vec<String> = needs
                .iter()
                .map(|n| format!("\"grep -qx {n} out/{n}.txt\""))
                .collect();
            script.push("\"mkdir -p out\"".into());
            script.push("\"sleep 0.5\"".into());
            script.push(format!("\"echo {name} > out/{name}.txt\""));
            script.push(format!("\"echo done-{name}\""));
            yaml.push_str(&format!(
                "  - name: {name}\n    image: {image}\n    runs_on: {{ zone: {zone} }}\n"
            ));
            if !needs.is_empty() {
                yaml.push_str(&format!("    needs: [{}]\n", needs.join(", ")));
            }
            yaml.push_str(&format!(
                "    artifacts: {{ paths: [out/{name}.txt] }}\n    script: [{}]\n",
                script.join(", ")
            ));
            zones.insert(name, zone);
        }
    }
    (yaml, zones)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_30_job_dag_over_three_hosts_runs_each_job_once_through_a_pipeline_svc_restart() {
    let mut fleet = Fleet::start(&[]).await;
    let (yaml, zones) = dag(&image());
    fleet.api.setup("fleet-dag", &yaml).await;
    let run = fleet.api.trigger("fleet-dag").await;
    assert_eq!(run.jobs.len(), 30);

    // While all three hosts work (the first layer done, the next running), pipeline-svc dies
    // without warning and comes back 2 s later on the same address and database.
    let deadline = Instant::now() + LIMIT;
    loop {
        let now = fleet.api.get_run(run.id).await;
        let ended = now
            .jobs
            .iter()
            .filter(|j| j.status == JobStatus::Success)
            .count();
        let running = now
            .jobs
            .iter()
            .filter(|j| j.status == JobStatus::Running)
            .count();
        if ended >= 8 && running >= 2 {
            eprintln!("killing pipeline-svc with {ended} jobs done and {running} running");
            break;
        }
        assert!(
            Instant::now() < deadline && !now.status.is_terminal(),
            "the run never got going: {now:#?}\n{}",
            fleet.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet.kill_pipeline();
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.start_pipeline().await;

    let done = fleet.api.wait_end(run.id, LIMIT).await;
    fleet.assert_success(&done).await;
    let events = fleet.api.events(run.id).await;
    let started = starts(&events);
    let mut hosts = BTreeSet::new();
    for job in &done.jobs {
        assert_eq!(job.attempt, 1, "{} ran once: {job:#?}", job.name);
        let runs: Vec<_> = started.iter().filter(|((j, _), _)| *j == job.id).collect();
        assert_eq!(runs.len(), 1, "{} started once: {runs:?}", job.name);
        let host = fleet.host_of(runs[0].1);
        assert_eq!(
            ZONES[host],
            zones[bare(&job.name)],
            "{} ran in its zone",
            job.name
        );
        hosts.insert(host);
        let log = fleet.api.log(job.id).await;
        assert!(
            log.contains(&format!("\ndone-{}\n", bare(&job.name))),
            "{}: {log}",
            job.name
        );
    }
    assert_eq!(hosts.len(), 3, "all three hosts worked");
    for lost in ["runner.lost", "job.retried", "job.failed"] {
        assert!(
            !events.iter().any(|e| e.event_type == lost),
            "no {lost}: {events:#?}"
        );
    }
    let replayed = gitweave_api::replay::replay(&events).expect("events replay");
    assert_eq!(replayed.status, RunStatus::Success);
}

/// A job that prints `attempt N` and, in its first attempt only, goes on printing `late-K`
/// lines for a minute.
fn lingering_job(image: &str) -> String {
    format!(
        r#"jobs:
  - name: long
    image: {image}
    retry: {{ max: 1, when: [runner_failure] }}
    script:
      - echo attempt $GITWEAVE_JOB_ATTEMPT
      - if [ "$GITWEAVE_JOB_ATTEMPT" = 1 ]; then i=0; while [ $i -lt 600 ]; do echo late-$i; i=$((i+1)); sleep 0.1; done; fi
      - echo finished
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_cut_off_past_its_lease_is_lost_its_job_retried_elsewhere_and_its_late_writes_refused()
 {
    // A 3 s lease: the cut host is lost after 3 s, and another host may take the retry once
    // the holder of the run's workspace has been out of contact for the lease plus 5 s.
    let fleet = Fleet::start(&[
        ("PIPELINE_LEASE_MS", "3000"),
        ("PIPELINE_REAPER_INTERVAL_MS", "200"),
        ("PIPELINE_RETRY_BASE_MS", "100"),
    ])
    .await;
    fleet.api.setup("fleet-cut", &lingering_job(&image())).await;
    let run = fleet.api.trigger("fleet-cut").await;
    let job = run.jobs[0].id;
    wait_log(&fleet.api, job, "\nlate-3\n", LIMIT).await;
    let first = starts(&fleet.api.events(run.id).await)[&(job, 1)].clone();
    let cut = fleet.host_of(&first);
    fleet.net.cut(cut);
    let cut_at = Instant::now();

    let lost = wait_event(&fleet.api, run.id, Duration::from_secs(60), |e| {
        e.event_type == "runner.lost"
    })
    .await;
    assert_eq!(lost.attempt, Some(1));
    assert!(
        lost.reason
            .as_deref()
            .is_some_and(|r| r.contains(&fleet.names[cut])),
        "{lost:?}"
    );
    eprintln!("runner.lost {:?} after the cut", cut_at.elapsed());
    let done = fleet.api.wait_end(run.id, LIMIT).await;
    fleet.assert_success(&done).await;
    assert_eq!(done.jobs[0].attempt, 2);
    let events = fleet.api.events(run.id).await;
    assert!(events.iter().any(|e| e.event_type == "job.retried"));
    let second = starts(&events)[&(job, 2)].clone();
    assert_ne!(fleet.host_of(&second), cut, "the retry ran on another host");
    let log = fleet.api.log(job).await;
    assert!(
        log.contains("\nattempt 2\n") && !log.contains("\nlate-"),
        "{log}"
    );
    // The cut host's job ran on all along; its container is still there.
    assert!(
        !containers_of_job(job).is_empty(),
        "attempt 1's container runs on"
    );

    // The link comes back: whatever the cut host sends for attempt 1 (its log, its lease) is
    // refused, and the host stops that job and removes its container.
    fleet.net.restore(cut);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let said = std::fs::read_to_string(fleet.runner_log(cut)).unwrap_or_default();
        if said.contains("lease lost; stopping the job")
            || said.contains("the attempt is no longer ours")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cut host never heard its attempt was taken back\n{}",
            fleet.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !containers_of_job(job).is_empty() {
        assert!(
            Instant::now() < deadline,
            "attempt 1's container was never removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing of attempt 1 got in: the stored log, the job and its events are attempt 2's.
    let after = fleet.api.get_run(run.id).await;
    assert_eq!(after.status, RunStatus::Success);
    assert_eq!(after.jobs[0].attempt, 2);
    assert_eq!(
        fleet.api.log(job).await,
        log,
        "the stored log did not change"
    );
    let later = fleet.api.events(run.id).await;
    assert_eq!(
        later.len(),
        events.len(),
        "no event after the end: {later:#?}"
    );
    // And the host is back in service.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let back = fleet
            .api
            .runners()
            .await
            .runners
            .into_iter()
            .any(|r| r.name == fleet.names[cut] && r.status == "online");
        if back {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cut host never came back online"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_mid_job_has_its_job_retried_on_another_host_with_the_artifacts() {
    let mut fleet = Fleet::start(&[
        ("PIPELINE_LEASE_MS", "2000"),
        ("PIPELINE_REAPER_INTERVAL_MS", "200"),
        ("PIPELINE_RETRY_BASE_MS", "100"),
    ])
    .await;
    let yaml = format!(
        r#"jobs:
  - name: build
    image: {image}
    artifacts: {{ paths: [out.txt] }}
    script: ["echo built > out.txt", "echo scratch > scratch.txt"]
  - name: test
    image: {image}
    needs: [build]
    retry: {{ max: 1, when: [runner_failure] }}
    script:
      - echo attempt $GITWEAVE_JOB_ATTEMPT
      - grep -qx built out.txt
      - if [ "$GITWEAVE_JOB_ATTEMPT" = 1 ]; then test -e scratch.txt; sleep 300; fi
      - test ! -e scratch.txt
      - echo finished
"#,
        image = image()
    );
    fleet.api.setup("fleet-kill", &yaml).await;
    let run = fleet.api.trigger("fleet-kill").await;
    let test = run
        .jobs
        .iter()
        .find(|j| bare(&j.name) == "test")
        .unwrap_or_else(|| panic!("no job test: {run:#?}"))
        .id;
    wait_log(&fleet.api, test, "attempt 1\n", LIMIT).await;
    let first = starts(&fleet.api.events(run.id).await)[&(test, 1)].clone();
    let dead = fleet.host_of(&first);
    fleet.kill_host(dead);

    let done = fleet.api.wait_end(run.id, LIMIT).await;
    fleet.assert_success(&done).await;
    let events = fleet.api.events(run.id).await;
    let lost: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "runner.lost")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:#?}");
    let second = starts(&events)[&(test, 2)].clone();
    assert_ne!(fleet.host_of(&second), dead, "the retry ran on a live host");
    // Its workspace was made again from the artifact; the dead host's scratch file is gone.
    let log = fleet.api.log(test).await;
    assert!(
        log.contains("[gitweave] artifacts: fetched 1 files (") && log.contains("\nfinished\n"),
        "{log}"
    );
}
