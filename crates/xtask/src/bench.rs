//! `xtask bench`: build, wait for a quiet machine, start the stack, run the workloads, write the
//! report.

use crate::machine::{self, Machine};
use crate::report::{Section, summary_table};
use crate::stack::{self, Engine, Stack};
use crate::workloads::{self, Ctx};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The workloads, in the order they run.
const ALL: [&str; 11] = [
    "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11",
];

/// `xtask bench` options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A short run (1–2 iterations of each workload) written to a temporary file: what CI may
    /// run to check that the bench still works. Its numbers mean little.
    #[arg(long)]
    smoke: bool,
    /// Only these workloads, e.g. `W1,W3`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where to write the report (default: bench/RESULTS.md, or a temporary file with --smoke).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not run `cargo build --release` first.
    #[arg(long)]
    no_build: bool,
    /// Do not wait for the 1-minute load average to drop below --quiet-load first.
    #[arg(long)]
    no_wait: bool,
    /// The 1-minute load average to wait for before measuring.
    #[arg(long, default_value_t = 1.0)]
    quiet_load: f64,
    /// The longest wait for it, in minutes (then it measures anyway and says so).
    #[arg(long, default_value_t = 30)]
    quiet_wait_minutes: u64,
    /// The job image (for GitWeave and every baseline alike).
    #[arg(long, default_value = "gitweave-busybox:latest")]
    image: String,
    /// `RUST_LOG` of the services (their default is `info`).
    #[arg(long, default_value = "info")]
    rust_log: String,
    /// Keep the work directory (service logs) after a successful run.
    #[arg(long)]
    keep: bool,
}

/// Runs the bench.
pub async fn run(root: &Path, args: BenchArgs) -> anyhow::Result<()> {
    let only: Vec<String> = args.only.iter().map(|w| w.trim().to_uppercase()).collect();
    if let Some(bad) = only.iter().find(|w| !ALL.contains(&w.as_str())) {
        bail!("unknown workload {bad}; choose from {}", ALL.join(","));
    }
    let selected: Vec<&str> = ALL
        .into_iter()
        .filter(|w| only.is_empty() || only.iter().any(|o| o == w))
        .collect();
    let command = std::iter::once("cargo run -p xtask --release --".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");

    // W5 runs only shell runners: it needs no job image.
    let needs_image = selected.iter().any(|w| *w != "W5");
    if needs_image
        && crate::machine::command_output("docker", &["image", "inspect", &args.image])
            .await
            .is_empty()
    {
        bail!(
            "the job image {} is not there; build it with scripts/local-images.sh job",
            args.image
        );
    }
    if !args.no_build {
        stack::build_release(root).await?;
    }
    let quiet = if args.no_wait || args.smoke {
        None
    } else {
        Some(
            machine::wait_until_quiet(
                args.quiet_load,
                Duration::from_secs(30),
                Duration::from_secs(args.quiet_wait_minutes * 60),
            )
            .await,
        )
    };
    let machine = Machine::describe().await;
    let load_start = machine::load_average();
    let started = time::OffsetDateTime::now_utc();
    let act = {
        let v = machine::command_output("act", &["--version"]).await;
        (!v.is_empty()).then(|| "act".to_owned())
    };
    let act_version = machine::command_output("act", &["--version"]).await;
    let wrk_version = machine::command_output("sh", &["-c", "wrk -v 2>&1 | head -n 1"]).await;
    let commit = machine::command_output(
        "git",
        &[
            "-C",
            &root.to_string_lossy(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    )
    .await;
    let dirty = !machine::command_output(
        "git",
        &[
            "-C",
            &root.to_string_lossy(),
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .await
    .is_empty();

    stack::remove_leftover_docker_objects().await;
    let mut stack = Stack::start(root, &args.rust_log).await?;
    if let Err(e) = stack.start_runner(Engine::Docker, "docker-0", 1).await {
        stack.shutdown().await;
        return Err(e);
    }
    let work = stack.dir.clone();
    let api = match crate::api::Api::new(&stack.gateway.url) {
        Ok(a) => a,
        Err(e) => {
            stack.shutdown().await;
            return Err(e);
        }
    };
    let mut ctx = Ctx {
        smoke: args.smoke,
        image: args.image.clone(),
        api,
        stack,
        work: work.clone(),
        act,
        big_log: None,
    };

    let mut sections = Vec::new();
    let mut contention: Vec<(String, f64, f64)> = Vec::new();
    let run_all = async {
        for w in &selected {
            let load = machine::fmt_load(machine::load_average());
            eprintln!("bench: {w} (load average {load})");
            let tools_before = machine::build_tool_ticks();
            let wall = std::time::Instant::now();
            let r = match *w {
                "W1" => workloads::w1::run(&mut ctx).await,
                "W2" => workloads::w2::run(&mut ctx).await,
                "W3" => workloads::w3::run(&mut ctx).await,
                "W4" => workloads::w4::run(&mut ctx).await,
                "W5" => workloads::w5::run(&mut ctx).await,
                "W6" => workloads::w6::run(&mut ctx).await,
                "W7" => workloads::w7::run(&mut ctx).await,
                "W8" => workloads::w8::run(&mut ctx).await,
                "W9" => workloads::w9::run(&mut ctx).await,
                "W10" => workloads::w10::run(&mut ctx).await,
                _ => workloads::w11::run(&mut ctx).await,
            };
            let mut section = r.unwrap_or_else(|e| {
                eprintln!("bench: {w} failed: {e:#}");
                Section {
                    title: format!("{w} — failed"),
                    body: format!("The workload could not run: {e:#}\n"),
                    targets: Vec::new(),
                }
            });
            let foreign = machine::foreign_cpu_seconds(&tools_before, &machine::build_tool_ticks());
            let secs = wall.elapsed().as_secs_f64();
            section.body = format!(
                "Load average (1/5/15 min) when it started: {load}. Other sessions' compilers and \
                 linkers used at least {foreign:.0} s of CPU during its {secs:.0} s ({:.2} cores on \
                 average).\n\n{}",
                foreign / secs.max(1.0),
                section.body
            );
            contention.push((w.to_string(), foreign, secs));
            sections.push(section);
        }
    };
    tokio::select! {
        () = run_all => {}
        _ = tokio::signal::ctrl_c() => {
            eprintln!("bench: interrupted; stopping the stack");
            ctx.stack.shutdown().await;
            bail!("interrupted");
        }
    }
    let load_end = machine::load_average();
    let ended = time::OffsetDateTime::now_utc();
    ctx.stack.shutdown().await;

    let report = render(&Rendered {
        command: &command,
        smoke: args.smoke,
        machine: &machine,
        started,
        ended,
        load_start,
        load_end,
        quiet: quiet.as_ref(),
        contention: &contention,
        commit: if dirty {
            format!("{commit} with uncommitted changes")
        } else {
            commit
        },
        act_version: &act_version,
        wrk_version: &wrk_version,
        image: &args.image,
        rust_log: &args.rust_log,
        sections: &sections,
    });
    let out = match &args.out {
        Some(p) => p.clone(),
        None if args.smoke => {
            std::env::temp_dir().join(format!("gitweave-bench-smoke-{}.md", std::process::id()))
        }
        None => root.join("bench/RESULTS.md"),
    };
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, report).with_context(|| format!("writing {}", out.display()))?;
    if args.keep || sections.iter().any(|s| s.title.ends_with("failed")) {
        eprintln!("bench: service logs kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    println!("{}", out.display());
    eprintln!("bench: wrote {}", out.display());
    let failed: Vec<&str> = sections
        .iter()
        .filter(|s| s.title.ends_with("failed"))
        .map(|s| s.title.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("some workloads could not run: {}", failed.join("; "));
    }
    Ok(())
}

struct Rendered<'a> {
    command: &'a str,
    smoke: bool,
    machine: &'a Machine,
    started: time::OffsetDateTime,
    ended: time::OffsetDateTime,
    load_start: (f64, f64, f64),
    load_end: (f64, f64, f64),
    quiet: Option<&'a machine::QuietWait>,
    /// Per workload: CPU seconds of other sessions' builds, and the workload's wall seconds.
    contention: &'a [(String, f64, f64)],
    commit: String,
    act_version: &'a str,
    wrk_version: &'a str,
    image: &'a str,
    rust_log: &'a str,
    sections: &'a [Section],
}

fn render(r: &Rendered<'_>) -> String {
    let fmt = time::format_description::well_known::Rfc3339;
    let date = |t: time::OffsetDateTime| t.format(&fmt).unwrap_or_default();
    let m = r.machine;
    let mut s = String::from("# GitWeave benchmark results\n\n");
    if r.smoke {
        s.push_str("**Smoke run**: 1–2 iterations per workload, to check that the bench works. These numbers are not measurements.\n\n");
    }
    s.push_str(&format!(
        "Produced by `{}` at commit {} ({}), from {} to {}. \
         The stack is these binaries started as processes on loopback ports against a \
         throw-away PostgreSQL 15 cluster (`scripts/pg-throwaway.sh`: fsync off), one docker runner \
         (`RUNNER_CONCURRENCY=1`, pull policy `never`) on the local Docker engine, `RUST_LOG={}`. \
         Every job, baseline and act run uses the image `{}`. \
         This file is written by the bench; regenerate it rather than editing it.\n\n",
        r.command,
        r.commit,
        stack::custom_bin_dir().map_or_else(
            || "release build".to_owned(),
            |d| format!("**binaries from `{d}`, not the release build**")
        ),
        date(r.started),
        date(r.ended),
        r.rust_log,
        r.image
    ));
    s.push_str("## Machine\n\n| | |\n|---|---|\n");
    s.push_str(&format!("| CPUs (`nproc`) | {} |\n", m.cpus));
    s.push_str(&format!("| CPU model | {} |\n", m.cpu_model));
    s.push_str(&format!("| memory | {} |\n", m.memory));
    s.push_str(&format!("| OS | {} |\n", m.os));
    s.push_str(&format!("| kernel | {} |\n", m.kernel));
    s.push_str(&format!(
        "| Docker engine | {} (storage driver {}) |\n",
        m.docker, m.docker_storage
    ));
    s.push_str(&format!("| rustc | {} |\n", m.rustc));
    s.push_str(&format!(
        "| act | {} |\n",
        if r.act_version.is_empty() {
            "not installed"
        } else {
            r.act_version
        }
    ));
    s.push_str(&format!("| wrk | {} |\n", r.wrk_version));
    s.push_str(&format!(
        "| load average (1/5/15 min) at start | {} |\n",
        machine::fmt_load(r.load_start)
    ));
    s.push_str(&format!(
        "| load average (1/5/15 min) at end | {} |\n",
        machine::fmt_load(r.load_end)
    ));
    match r.quiet {
        Some(q) if q.quiet => s.push_str(&format!(
            "| quiet wait | the 1-minute load fell below {} after {} s |\n",
            q.threshold,
            q.waited.as_secs()
        )),
        Some(q) => s.push_str(&format!(
            "| quiet wait | **the machine never got quiet**: after {} s the 1-minute load was still ≥ {} (lowest seen {:.2}); measured anyway |\n",
            q.waited.as_secs(),
            q.threshold,
            q.lowest
        )),
        None => s.push_str("| quiet wait | skipped |\n"),
    }
    if !r.contention.is_empty() {
        let per: Vec<String> = r
            .contention
            .iter()
            .map(|(w, cpu, wall)| format!("{w} {:.2}", cpu / wall.max(1.0)))
            .collect();
        s.push_str(&format!(
            "| other sessions' compilers and linkers, in cores used on average while each workload ran | {} |\n",
            per.join(", ")
        ));
    }
    s.push_str("\n## Summary against the targets\n\n");
    let targets: Vec<_> = r
        .sections
        .iter()
        .flat_map(|x| x.targets.iter().cloned())
        .collect();
    s.push_str(&summary_table(&targets));
    for sec in r.sections {
        s.push_str(&format!("\n## {}\n\n{}", sec.title, sec.body));
    }
    s
}
