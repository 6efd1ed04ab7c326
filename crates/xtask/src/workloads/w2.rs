//! W2: one job printing `seq 1 3000000` (22.9 MB), trigger → `success` with the whole log
//! stored, against the same container discarding its output inside (the floor), against
//! `docker run` streaming it to /dev/null, and against act. Also the peak RSS of each service
//! while W2 runs.

use super::{Alternation, Ctx, act_push, act_repo, docker_run, template, timed};
use crate::machine::{memory_of, reset_peak_rss};
use crate::report::{Section, Target, timing_table};
use anyhow::bail;
use std::time::Duration;

const REPO: &str = "bench-w2";
const N: u32 = 3_000_000;
const LINE: &str = "seq 1 3000000";

const WORKFLOW: &str = "on: push
jobs:
  seq:
    runs-on: ubuntu-latest
    steps:
      - run: seq 1 3000000
        shell: sh
";

/// The log GitWeave must store: the echoed script line, then seq's output.
fn expected_log() -> Vec<u8> {
    let mut v = Vec::with_capacity(23_000_000);
    v.extend_from_slice(format!("$ {LINE}\n").as_bytes());
    for i in 1..=N {
        v.extend_from_slice(i.to_string().as_bytes());
        v.push(b'\n');
    }
    v
}

/// Runs W2.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    ctx.api
        .setup_pipeline(REPO, &template(&ctx.image, &[("seq", LINE)]))
        .await?;
    let act_dir = ctx.work.join("act-w2");
    let act = match &ctx.act {
        Some(act) => {
            act_repo(&act_dir, WORKFLOW).await?;
            Some(act.clone())
        }
        None => None,
    };
    let mut names = vec![
        "GitWeave: trigger → success, whole log stored",
        "floor: docker run … sh -c 'seq 1 3000000 > /dev/null'",
        "docker run --rm --network none IMAGE seq 1 3000000 > /dev/null",
    ];
    if act.is_some() {
        names.push("act push (1 job, seq 1 3000000)");
    }
    let api = ctx.api.clone();
    let image = ctx.image.clone();

    // Correctness first, not timed: the stored log is exactly what the job wrote.
    let t = api.trigger(REPO).await?;
    api.expect_success(&t.run_id, Duration::from_secs(300))
        .await?;
    let job = t.job_ids.first().cloned().unwrap_or_default();
    let stored = api.raw_log(&job).await?;
    let expected = expected_log();
    if stored != expected {
        bail!(
            "the stored log of job {job} differs from seq's output ({} bytes stored, {} expected)",
            stored.len(),
            expected.len()
        );
    }
    ctx.big_log = Some((t.run_id.clone(), job));
    let log_len = expected.len();
    drop((stored, expected));

    let services: Vec<(String, u32)> = [&ctx.stack.pipeline, &ctx.stack.gateway]
        .into_iter()
        .chain(ctx.stack.runners.iter())
        .filter_map(|s| Some((s.name.clone(), s.pid()?)))
        .collect();
    let reset = services.iter().all(|(_, pid)| reset_peak_rss(*pid));

    let mut alt = Alternation::new(&names);
    let gitweave = || async {
        let t = api.trigger(REPO).await?;
        api.expect_success(&t.run_id, Duration::from_secs(300))
            .await?;
        Ok(())
    };
    let floor = || docker_run(&image, true, &["sh", "-c", "seq 1 3000000 > /dev/null"]);
    let stream = || docker_run(&image, true, &["seq", "1", "3000000"]);
    if !ctx.smoke {
        floor().await?;
    }
    let n = ctx.iterations(7, 1);
    for i in 0..n {
        eprintln!("bench: W2 iteration {}/{n}", i + 1);
        alt.record(0, timed(gitweave()).await);
        alt.record(1, timed(floor()).await);
        alt.record(2, timed(stream()).await);
        if let Some(act) = &act {
            alt.record(3, timed(act_push(act, &image, &act_dir)).await);
        }
    }
    // Every timed GitWeave run ended `success`, which pipeline-svc allows only once the whole
    // log is stored (finish is refused while log_end differs); check the last one's length too.
    if let Some((_, job)) = &ctx.big_log {
        let (next, complete, _) = api.log_page(job, log_len as u64 - 8, 65536).await?;
        if next != log_len as u64 || !complete {
            bail!("the log of job {job} ends at {next} (complete: {complete}), not {log_len}");
        }
    }

    let mut body = format!(
        "One job running `{LINE}`: {log_len} bytes of log (with the echoed `$ {LINE}` line). \
         GitWeave: trigger through the gateway → the run's event stream until it ends → \
         `GET` of the run showing `success` (pipeline-svc accepts a job's end only once its whole log \
         is stored). Before the timed runs, one run's stored log was read back through `/logs/raw` and \
         compared byte for byte with seq's output. Floor: the same container discarding the output \
         inside itself. The commands alternate.\n\n"
    );
    body.push_str(&timing_table(&alt.rows(), 1));
    body.push_str(&alt.errors_md());

    body.push_str("\n**Peak RSS during W2** (`VmHWM` from `/proc/PID/status`");
    body.push_str(if reset {
        ", reset with `echo 5 > /proc/PID/clear_refs` when W2 started, so it covers W2 only):\n\n"
    } else {
        "; it could not be reset, so it is the peak since start-up):\n\n"
    });
    body.push_str("| service | peak RSS | RSS at the end |\n|---|---:|---:|\n");
    let mut targets = vec![Target::at_most(
        "W2",
        "GitWeave ÷ in-container discard (median)",
        alt.ratio(0, 1),
        1.5,
        "×",
    )];
    targets.push(Target::reference(
        "W2",
        "docker run to /dev/null ÷ floor (issue measured ~7.7×)",
        alt.ratio(2, 1)
            .map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
    ));
    if act.is_some() {
        targets.push(Target::reference(
            "W2",
            "act ÷ floor (issue measured ~12×)",
            alt.ratio(3, 1)
                .map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
        ));
    }
    for (name, pid) in &services {
        let (hwm, rss) = memory_of(*pid).unwrap_or((0, 0));
        let mib = |kib: u64| kib as f64 / 1024.0;
        body.push_str(&format!(
            "| {name} | {:.1} MiB | {:.1} MiB |\n",
            mib(hwm),
            mib(rss)
        ));
        let limit = if name.starts_with("runner-svc") {
            Some(64.0)
        } else if name == "pipeline-svc" {
            Some(128.0)
        } else {
            None
        };
        let measure = format!("peak RSS of {name} during W2");
        targets.push(match limit {
            Some(l) => Target::at_most("W2", &measure, Some(mib(hwm)), l, "MiB"),
            None => Target::reference("W2", &measure, format!("{:.1} MiB", mib(hwm))),
        });
    }
    Ok(Section {
        title: "W2 — one job writing 22.9 MB of log".into(),
        body,
        targets,
    })
}
