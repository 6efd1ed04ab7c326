//! Jobs are contained (SPEC §15): no privileges beyond a build's needs, the runner's process,
//! memory and CPU limits (and a job's smaller `resources`), `oom_killed` for a job killed for
//! memory, and no network path to the host's services or to another run's containers.

use crate::helpers::{Options, TestApp, image, spawn_with};
use gitweave_api::public::Run;
use gitweave_model::status::{ErrorClass, JobStatus, RunStatus};
use serde_json::json;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

async fn log_of(app: &TestApp, run: &Run, name: &str) -> String {
    let job = run
        .jobs
        .iter()
        .find(|j| j.name == name)
        .unwrap_or_else(|| panic!("no job {name} in {run:#?}"));
    String::from_utf8(app.raw_log(job.id).await).expect("utf8 log")
}

/// The value after `key` on the log line that starts with it.
fn field<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} line in {log}"))
        .trim()
}

/// Whether a line of `log` (not the echo of a script line) starts with `prefix`.
fn printed(log: &str, prefix: &str) -> bool {
    log.lines().any(|l| l.starts_with(prefix))
}

/// Capabilities GitWeave takes away, by bit number (linux/capability.h).
const DROPPED: [(&str, u32); 6] = [
    ("SETPCAP", 8),
    ("NET_RAW", 13),
    ("SYS_CHROOT", 18),
    ("MKNOD", 27),
    ("AUDIT_WRITE", 29),
    ("SETFCAP", 31),
];
/// What builds keep: CHOWN, DAC_OVERRIDE, FOWNER, SETGID, SETUID, KILL.
const KEPT: [(&str, u32); 6] = [
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("FOWNER", 3),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
];

/// Prints what the job can see of its own limits, on cgroup v1 or v2.
const PROBE: &str = r#"
  - grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status
  - echo "PIDS $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
  - echo "MEMORY $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
  - echo "CPU $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max)"
  - if mknod /tmp/null c 1 3 2>/dev/null; then echo "MKNOD allowed"; else echo "MKNOD refused"; fi
"#;

#[tokio::test]
async fn a_job_runs_without_extra_privileges_within_the_runners_limits_or_its_smaller_resources() {
    let app = spawn_with(Options {
        job_memory: Some("256m"),
        ..Options::default()
    })
    .await;
    let img = image();
    let indent = |s: &str| s.replace("\n  -", "\n      -");
    app.repo_with(
        "caged",
        "t",
        &format!(
            "jobs:\n  - name: default\n    image: {img}\n    script:{}\n  - name: smaller\n    image: {img}\n    resources: {{ memory: 64m, cpus: 0.5 }}\n    script:{}\n",
            indent(PROBE),
            indent(PROBE)
        ),
    )
    .await;
    let run = app.trigger("caged", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");

    for (job, memory, cpu) in [
        ("t/default", 256u64 << 20, "-1"),
        ("t/smaller", 64 << 20, "50000"),
    ] {
        let log = log_of(&app, &run, job).await;
        assert_eq!(field(&log, "NoNewPrivs:"), "1", "{job}: {log}");
        for key in ["CapEff:", "CapBnd:"] {
            let caps = u64::from_str_radix(field(&log, key), 16).expect("hex capabilities");
            for (name, bit) in DROPPED {
                assert_eq!(caps & (1 << bit), 0, "{job} keeps {name} in {key}: {log}");
            }
            for (name, bit) in KEPT {
                assert_ne!(caps & (1 << bit), 0, "{job} lost {name} in {key}: {log}");
            }
        }
        assert_eq!(field(&log, "PIDS"), "4096", "{job}: {log}");
        assert_eq!(field(&log, "MEMORY"), memory.to_string(), "{job}: {log}");
        // cgroup v1 says -1 for no quota, v2 says max.
        let quota = field(&log, "CPU");
        match cpu {
            "-1" => assert!(quota == "-1" || quota == "max", "{job}: {log}"),
            q => assert_eq!(quota, q, "{job}: {log}"),
        }
        assert!(log.contains("MKNOD refused"), "{job}: {log}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_job_asking_for_more_than_the_runners_maximum_fails_with_config_error() {
    let app = spawn_with(Options {
        job_memory: Some("64m"),
        ..Options::default()
    })
    .await;
    let img = image();
    app.repo_with(
        "greedy",
        "t",
        &format!(
            "jobs:\n  - {{ name: big, image: {img}, resources: {{ memory: 128m }}, script: [echo should-not-run] }}\n"
        ),
    )
    .await;
    let run = app.trigger("greedy", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let job = &run.jobs[0];
    assert_eq!(
        (job.status, job.error_class, job.attempt),
        (JobStatus::Failed, Some(ErrorClass::ConfigError), 1),
        "{run:#?}"
    );
    let log = log_of(&app, &run, "t/big").await;
    assert!(
        log.contains("memory 128m") && log.contains("maximum of 64m (RUNNER_JOB_MEMORY)"),
        "the reason names both values: {log}"
    );
    assert!(!printed(&log, "should-not-run"), "{log}");
    assert_eq!(app.settled_containers().await, Vec::<String>::new());
    app.shutdown().await;
}

#[tokio::test]
async fn a_job_killed_for_memory_fails_with_oom_killed() {
    let app = spawn_with(Options {
        job_memory: Some("32m"),
        ..Options::default()
    })
    .await;
    let img = image();
    // The shell holds a 200 MB string: far past 32 MiB.
    app.repo_with(
        "hungry",
        "t",
        &format!(
            r#"jobs:
  - name: eat
    image: {img}
    script:
      - echo eating
      - x=$(head -c 200000000 /dev/zero | tr '\0' a); echo "survived ${{#x}}"
"#
        ),
    )
    .await;
    let run = app.trigger("hungry", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    let job = &run.jobs[0];
    let log = log_of(&app, &run, "t/eat").await;
    assert_eq!(
        (job.status, job.error_class),
        (JobStatus::Failed, Some(ErrorClass::OomKilled)),
        "{run:#?}\n{log}"
    );
    assert!(!printed(&log, "survived"), "{log}");
    assert!(log.contains("out of memory"), "{log}");
    app.shutdown().await;
}

/// The Docker host's address on the default bridge (`docker0`), where a job on that bridge
/// would reach the host's services.
fn default_bridge_gateway() -> String {
    let out = std::process::Command::new("docker")
        .args([
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
        ])
        .output()
        .expect("docker network inspect bridge");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .unwrap_or("172.17.0.1")
        .to_owned()
}

/// Tries every address in `$ADDRS` (and the job's own default gateway, from
/// `/proc/net/route`) on `port`, printing `REACHED <addr>` for each that answers.
fn probe_script(addrs: &str, port: u16) -> String {
    format!(
        r#"
      - echo "ROUTES"; cat /proc/net/route
      - gw=$(awk 'NR > 1 && $2 == "00000000" {{ h = $3; printf "%d.%d.%d.%d", "0x" substr(h,7,2), "0x" substr(h,5,2), "0x" substr(h,3,2), "0x" substr(h,1,2) }}' /proc/net/route)
      - for a in {addrs} $gw; do echo "trying $a"; if nc -w 3 "$a" {port} </dev/null; then echo "REACHED $a"; fi; done
      - echo probed"#
    )
}

#[tokio::test]
async fn a_job_cannot_reach_a_service_listening_on_the_host() {
    jobs_cannot_reach_the_host(Options::default()).await;
}

/// `RUNNER_JOB_NETWORK=job` gives each container a namespace of its own, never one on Docker's
/// default bridge.
#[tokio::test]
async fn with_a_namespace_per_job_a_job_still_cannot_reach_the_host() {
    jobs_cannot_reach_the_host(Options {
        job_network: Some("job"),
        ..Options::default()
    })
    .await;
}

async fn jobs_cannot_reach_the_host(opts: Options) {
    let app = spawn_with(opts).await;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind on every address");
    let port = listener.local_addr().expect("addr").port();
    let accepted = tokio::spawn(async move {
        let mut peers = Vec::new();
        while let Ok(Ok((_, peer))) =
            tokio::time::timeout(Duration::from_secs(60), listener.accept()).await
        {
            peers.push(peer);
        }
        peers
    });
    let img = image();
    let gateway = default_bridge_gateway();
    let probe = probe_script(&gateway, port);
    // A one-job run (its own namespace) and a two-job run (the run's shared namespace).
    app.repo_with(
        "solo",
        "one",
        &format!("jobs:\n  - name: probe\n    image: {img}\n    script:{probe}\n"),
    )
    .await;
    app.repo_with(
        "pair",
        "two",
        &format!(
            "jobs:\n  - name: probe\n    image: {img}\n    script:{probe}\n  - name: again\n    image: {img}\n    script:{probe}\n"
        ),
    )
    .await;
    for (repo, jobs) in [
        ("solo", &["one/probe"][..]),
        ("pair", &["two/probe", "two/again"]),
    ] {
        let run = app.trigger(repo, &json!({})).await;
        let run = app.wait_run(run.id, LIMIT).await;
        assert_eq!(run.status, RunStatus::Success, "{run:#?}");
        for job in jobs {
            let log = log_of(&app, &run, job).await;
            assert!(
                printed(&log, &format!("trying {gateway}")) && printed(&log, "probed"),
                "{job}: {log}"
            );
            assert!(!printed(&log, "REACHED"), "{job} reached the host: {log}");
        }
    }
    accepted.abort();
    if let Ok(peers) = accepted.await {
        assert!(
            peers.is_empty(),
            "the host's service was reached from {peers:?}"
        );
    }
    app.shutdown().await;
}

/// Run A listens on port 8000 and prints its addresses; run B, at the same time, tries them
/// all. Returns B's log.
/// Connection attempts B makes to each of A's addresses (0.2 s apart, or 1 s when dropped).
const PROBES: u32 = 25;

/// Creates and removes Docker networks (named with the test's prefix) until stopped.
struct NetworkChurn {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u32>,
}

impl NetworkChurn {
    fn start(prefix: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let name = format!("{prefix}churn");
        let task = tokio::task::spawn_blocking(move || {
            let mut made = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && made < 60 {
                let docker = |args: &[&str]| {
                    std::process::Command::new("docker")
                        .args(args)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                };
                if docker(&["network", "create", &name]) {
                    made += 1;
                }
                docker(&["network", "rm", &name]);
            }
            made
        });
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let made = self.task.await.expect("network churn");
        assert!(made > 0, "the churn made no network");
    }
}

async fn one_run_tries_to_reach_another(app: &TestApp) -> String {
    let img = image();
    app.repo_with(
        "listener",
        "a",
        &format!(
            r#"jobs:
  - name: listen
    image: {img}
    timeout: 90s
    script:
      - echo "ADDRS $(ip -4 -o addr show | awk '{{ split($4, a, "/"); print a[1] }}' | tr '\n' ' ')"
      - nc -l -p 8000 -e echo hello-from-a &
      - echo LISTENING
      - sleep 80
"#
        ),
    )
    .await;
    let a = app.trigger("listener", &json!({})).await;
    let a_job = a.jobs[0].id;
    let deadline = tokio::time::Instant::now() + LIMIT;
    let addrs = loop {
        let log = String::from_utf8(app.raw_log(a_job).await).expect("utf8");
        if log.contains("LISTENING") {
            break field(&log, "ADDRS").to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run A never listened: {log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(addrs.contains("127.0.0.1"), "{addrs}");
    app.repo_with(
        "prober",
        "b",
        &format!(
            r#"jobs:
  - name: connect
    image: {img}
    script:
      - ip -4 -o addr show
      - for a in {addrs}; do echo "trying $a"; i=0; while [ $i -lt {PROBES} ]; do i=$((i+1)); if nc -w 1 "$a" 8000 </dev/null | grep -q hello-from-a; then echo "REACHED $a"; break; fi; sleep 0.2; done; done
      - echo probed
"#
        ),
    )
    .await;
    let b = app.trigger("prober", &json!({})).await;
    // Networks made and removed on the same daemon while B probes: on Docker 20.10 each
    // `network create` lifts the isolation between bridge networks for a moment.
    let churn = NetworkChurn::start(&app.prefix);
    let b = app.wait_run(b.id, LIMIT).await;
    churn.stop().await;
    assert_eq!(b.status, RunStatus::Success, "{b:#?}");
    let log = log_of(app, &b, "b/connect").await;
    let a_now = app.run(a.id).await;
    assert_eq!(
        a_now.status,
        RunStatus::Running,
        "A still listened: {a_now:#?}"
    );
    let r = app
        .post_json(&format!("/pipelines/runs/{}/cancel", a.id), &json!({}))
        .await;
    assert_eq!(r.status().as_u16(), 202);
    app.wait_run(a.id, LIMIT).await;
    log
}

#[tokio::test]
async fn a_job_cannot_reach_the_containers_of_another_run() {
    let app = spawn_with(Options {
        concurrency: 2,
        ..Options::default()
    })
    .await;
    let log = one_run_tries_to_reach_another(&app).await;
    assert!(printed(&log, "probed"), "{log}");
    assert!(!printed(&log, "REACHED"), "run B reached run A: {log}");
    assert!(!printed(&log, "hello-from-a"), "{log}");
    app.shutdown().await;
}

/// `RUNNER_JOB_EGRESS=true`: each run on a bridge network of its own, made ahead with its
/// sandbox and removed with it; another run's address stays unreachable.
#[tokio::test]
async fn with_egress_each_run_has_its_own_network_and_cannot_reach_another_run() {
    let app = spawn_with(Options {
        concurrency: 2,
        job_egress: true,
        ..Options::default()
    })
    .await;
    let log = one_run_tries_to_reach_another(&app).await;
    let tried: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("trying "))
        .collect();
    assert!(
        tried.iter().any(|a| *a != "127.0.0.1"),
        "run A had an address on its run's network: {log}"
    );
    assert!(printed(&log, "probed"), "{log}");
    assert!(!printed(&log, "REACHED"), "run B reached run A: {log}");
    // The networks are this runner's, labelled, and go with it.
    let networks = || {
        let out = std::process::Command::new("docker")
            .args([
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=gitweave.sandbox={}", app.runner_name),
            ])
            .output()
            .expect("docker network ls");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count()
    };
    assert!(networks() >= 1, "run networks are labelled with the runner");
    let name = app.runner_name.clone();
    app.shutdown().await;
    let out = std::process::Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=gitweave.sandbox={name}"),
        ])
        .output()
        .expect("docker network ls");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "a stopped runner leaves no network behind"
    );
}

/// An address on the host's loopback for one test (root, as the suite runs): a stand-in for a
/// public address that traffic from a container reaches only through its network's gateway.
struct HostAddress(std::net::Ipv4Addr);

impl HostAddress {
    fn add(addr: std::net::Ipv4Addr) -> Self {
        let out = std::process::Command::new("ip")
            .args(["addr", "add", &format!("{addr}/32"), "dev", "lo"])
            .output()
            .expect("ip addr add (iproute2 on the host)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || err.contains("exists"),
            "adding {addr} to the host's loopback (the suite runs as root): {err}"
        );
        Self(addr)
    }
}

impl Drop for HostAddress {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"])
            .output();
    }
}

/// Answers every connection with `hello-from-host` (until the test ends).
async fn greeter(addr: std::net::Ipv4Addr) -> u16 {
    let listener = tokio::net::TcpListener::bind((addr, 0))
        .await
        .expect("bind a host listener");
    let port = listener.local_addr().expect("local addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = conn.write_all(b"hello-from-host\n").await;
        }
    });
    port
}

/// With egress the guard keeps the internet open: a public address (TEST-NET-2, on the host's
/// loopback here) answers through the run network's gateway, while the gateway's own address,
/// where every service of the host listening on `0.0.0.0` answers too, is refused.
#[tokio::test]
async fn with_egress_a_job_reaches_a_public_address_but_not_the_gateway() {
    let public = HostAddress::add(std::net::Ipv4Addr::new(198, 51, 100, 7));
    let public_port = greeter(public.0).await;
    let host_port = greeter(std::net::Ipv4Addr::UNSPECIFIED).await;
    let app = spawn_with(Options {
        job_egress: true,
        ..Options::default()
    })
    .await;
    let img = image();
    app.repo_with(
        "egress",
        "e",
        &format!(
            r#"jobs:
  - name: out
    image: {img}
    script:
      - set -- $(ip -4 route show default); gw=$3; echo "GATEWAY $gw"
      - if nc -w 3 {public} {public_port} </dev/null | grep -q hello-from-host; then echo "PUBLIC reached"; fi
      - if nc -w 3 "$gw" {host_port} </dev/null | grep -q hello-from-host; then echo "HOST reached"; fi
      - echo probed
"#,
            public = public.0,
        ),
    )
    .await;
    let run = app.trigger("egress", &json!({})).await;
    let run = app.wait_run(run.id, LIMIT).await;
    assert_eq!(run.status, RunStatus::Success, "{run:#?}");
    let log = log_of(&app, &run, "e/out").await;
    assert!(printed(&log, "probed"), "{log}");
    assert!(!field(&log, "GATEWAY").is_empty(), "{log}");
    assert!(printed(&log, "PUBLIC reached"), "egress is open: {log}");
    assert!(
        !printed(&log, "HOST reached"),
        "the gateway is refused: {log}"
    );
    app.shutdown().await;
}

/// Egress is guarded in the run's sandbox, which `RUNNER_JOB_NETWORK=job` has none of: the
/// runner refuses the pair at start instead of giving jobs an unguarded network.
#[tokio::test]
async fn egress_with_a_namespace_per_job_is_refused_at_start() {
    let mut config = runner_svc::Config::for_pipeline(
        "http://127.0.0.1:9",
        runner_svc::config::EngineKind::Docker,
    );
    config.job_egress = true;
    config.job_network = "job".parse().expect("job network");
    let err = match runner_svc::App::build(config).await {
        Ok(_) => panic!("a runner started with egress and a namespace per job"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("RUNNER_JOB_NETWORK=run"), "{err}");
}
