//! W9: a job with a Postgres service (SPEC §12): trigger → the service ready and the job's
//! `select 1` done, run `success` seen through the API; against `docker run` of the same
//! Postgres container polled with `pg_isready` until it is ready, then `docker run` of the
//! client in its namespace (the server's kill and removal follow, untimed).

use super::{Alternation, Ctx, run_quiet, timed};
use crate::report::{Section, Target, timing_table};
use anyhow::bail;
use std::time::{Duration, Instant};

const REPO: &str = "bench-w9";
/// The service's image and the job's (the client), as in the spec's example.
const POSTGRES: &str = "postgres:15-bookworm";
/// How often the baseline asks `pg_isready`, as often as the runner checks readiness.
const POLL: Duration = Duration::from_millis(100);
/// The baseline gives up on a Postgres not ready after this long.
const READY_MAX: Duration = Duration::from_secs(120);

fn template() -> String {
    format!(
        r#"jobs:
  - name: integration
    image: {POSTGRES}
    env: {{ PGPASSWORD: ci }}
    services:
      - name: db
        image: {POSTGRES}
        env: {{ POSTGRES_PASSWORD: ci }}
        ready: {{ command: "pg_isready -h 127.0.0.1 -U postgres", timeout: 120s }}
    script:
      - psql -h db -U postgres -tAc 'select 1'
"#
    )
}

fn server_name(i: usize) -> String {
    format!("gitweave-bench-w9-{}-{i}", std::process::id())
}

/// The same work by hand, as the issue names it: the server, polled until ready, then the
/// client in its namespace. Nothing of the server's end is timed ([`remove`] follows, untimed),
/// although the runner's timed path kills its service before it reports the job's end.
async fn baseline(i: usize) -> anyhow::Result<()> {
    let name = server_name(i);
    run_quiet(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-e",
            "POSTGRES_PASSWORD=ci",
            POSTGRES,
        ],
        None,
    )
    .await?;
    let t = Instant::now();
    while run_quiet(
        "docker",
        &[
            "exec",
            &name,
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ],
        None,
    )
    .await
    .is_err()
    {
        if t.elapsed() > READY_MAX {
            bail!("postgres was not ready within {READY_MAX:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    let network = format!("container:{name}");
    run_quiet(
        "docker",
        &[
            "run",
            "--rm",
            "--network",
            &network,
            "-e",
            "PGPASSWORD=ci",
            POSTGRES,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-tAc",
            "select 1",
        ],
        None,
    )
    .await
}

/// Removes a baseline's server (`docker rm -f`: killed first) with its anonymous volume
/// (Postgres' data directory), untimed.
async fn remove(i: usize) -> anyhow::Result<()> {
    run_quiet("docker", &["rm", "-f", "-v", &server_name(i)], None).await
}

/// Runs W9.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    ctx.api.setup_pipeline(REPO, &template()).await?;
    let mut alt = Alternation::new(&[
        "GitWeave: trigger → Postgres service ready, `select 1`, run success (API)",
        "docker run postgres, pg_isready polled, docker run psql",
    ]);
    let api = ctx.api.clone();
    let gitweave = || async {
        let t = api.trigger(REPO).await?;
        api.expect_success(&t.run_id, Duration::from_secs(240))
            .await
    };
    // Warm-up (not measured): page cache, image layers, connection pools.
    if !ctx.smoke {
        gitweave().await?;
        let warm = baseline(0).await;
        remove(0).await?;
        warm?;
    }
    let n = ctx.iterations(5, 1);
    for i in 1..=n {
        eprintln!("bench: W9 iteration {i}/{n}");
        alt.record(0, timed(gitweave()).await);
        alt.record(1, timed(baseline(i)).await);
        remove(i).await?;
    }
    let mut body = String::from(
        "A job whose service is the real `postgres:15-bookworm` (initdb included), and whose \
         script, in the same image, runs `psql -h db -U postgres -tAc 'select 1'`. Readiness is \
         `pg_isready -h 127.0.0.1` on both sides (a TCP listen comes before Postgres accepts \
         connections). GitWeave: `POST /repos/bench-w9/pipelines/run` through the gateway until \
         the run is seen `success`; that includes the job's own network namespace, the service's \
         start, the readiness polls (every 100 ms), the job's container and the service's \
         kill (SIGKILL) before the end is reported; its removal follows the report, untimed. \
         Baseline: `docker run -d` of the server, `docker exec … pg_isready` every 100 ms until \
         it answers, then `docker run --rm --network container:<server>` of `psql`; the server's \
         kill and removal (`docker rm -f -v`, with Postgres' data volume) follow, untimed, so \
         GitWeave's side alone pays for stopping the server. The commands \
         alternate (A B A B …).\n\n",
    );
    body.push_str(&timing_table(&alt.rows(), 1));
    body.push_str(&alt.errors_md());
    Ok(Section {
        title: "W9 — a job with a Postgres service".into(),
        body,
        targets: vec![Target::at_most(
            "W9",
            "GitWeave ÷ docker run + pg_isready + client (median)",
            alt.ratio(0, 1),
            1.0,
            "×",
        )],
    })
}
