//! A repo file's run (SPEC §9) as stages, shared by pipeline-svc (a trigger, with the stored
//! templates) and the CLI (`gitweave exec`, with the templates the server answers): the
//! included templates first, in `include` order with their inputs as defaults, then the
//! file's own jobs that the rules keep, as the stage [`FILE_STAGE`]. Pure: the callers load
//! the templates and evaluate nothing themselves.

use crate::names::quoted;
use crate::rules::{self, RuleContext};
use crate::run_plan::Stage;
use crate::template::{RepoFile, Template};
use std::collections::BTreeMap;

/// The stage name of the file's own jobs (`pipeline/<job>`).
pub const FILE_STAGE: &str = "pipeline";

/// The file's own stage has no default inputs: the trigger's inputs are its only ones.
static NO_DEFAULTS: BTreeMap<String, String> = BTreeMap::new();

/// The file's own jobs a trigger's rules keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnJobs {
    /// The jobs kept, in file order.
    pub template: Template,
    /// The whole file's scheduling mode (it had `needs`), kept when jobs are left out.
    pub dag: bool,
}

/// Refuses an include that would take the name of the file's own stage; the message starts
/// with `include[i]`.
pub fn check_includes(file: &RepoFile) -> Result<(), String> {
    match file
        .include
        .iter()
        .position(|inc| inc.template.as_str() == FILE_STAGE)
    {
        Some(i) => Err(format!(
            "include[{i}]: a template named {} cannot be included (it is the name of the file's own stage)",
            quoted(FILE_STAGE)
        )),
        None => Ok(()),
    }
}

/// The file's own jobs that `ctx` keeps ([`rules::keep_jobs`]); `None` when it has none or
/// its rules keep none.
pub fn own_jobs(file: &RepoFile, ctx: &RuleContext<'_>) -> Option<OwnJobs> {
    let t = file.pipeline.as_ref()?;
    let (kept, _left_out) = rules::keep_jobs(t, ctx);
    kept.map(|template| OwnJobs {
        template,
        dag: t.uses_dag(),
    })
}

/// The run's stages: `included` (one template per `file.include` entry, in order) then
/// `own`. Give them to [`crate::run_plan::plan_run`].
pub fn stages<'a>(
    file: &'a RepoFile,
    included: &'a [Template],
    own: Option<&'a OwnJobs>,
) -> Vec<Stage<'a>> {
    let mut stages: Vec<Stage<'a>> = file
        .include
        .iter()
        .zip(included)
        .map(|(inc, t)| Stage {
            name: inc.template.as_str(),
            template: t,
            defaults: &inc.inputs,
            dag: None,
        })
        .collect();
    if let Some(own) = own {
        stages.push(Stage {
            name: FILE_STAGE,
            template: &own.template,
            defaults: &NO_DEFAULTS,
            dag: Some(own.dag),
        });
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleEvent;
    use crate::run_plan::plan_run;
    use crate::template::{parse_repo_file, parse_template};

    #[test]
    fn included_templates_run_before_the_files_jobs_the_rules_keep() {
        let file = parse_repo_file(
            "include:\n  - template: build\n    inputs: { who: file }\njobs:\n  - name: test\n    script: [\"true\"]\n  - name: deploy\n    script: [\"true\"]\n    rules:\n      - branch: [main]\n",
            ".gitweave.yml",
        )
        .expect("valid");
        let build = parse_template(
            "inputs:\n  who: { required: true }\njobs:\n  - name: compile\n    script: [\"echo ${{ inputs.who }}\"]\n",
        )
        .expect("valid");
        check_includes(&file).expect("no include named pipeline");
        let ctx = RuleContext::of_ref(RuleEvent::Push, "refs/heads/topic", None);
        let own = own_jobs(&file, &ctx);
        let included = [build];
        let stages = stages(&file, &included, own.as_ref());
        let run = plan_run(&stages, &BTreeMap::new()).expect("planned");
        let names: Vec<&str> = run.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["build/compile", "pipeline/test"]);
        assert_eq!(run.jobs[0].job.script, ["echo file"]);
    }

    #[test]
    fn an_include_named_like_the_files_stage_is_refused() {
        let file = parse_repo_file("include:\n  - template: pipeline\n", "f").expect("parses");
        let err = check_includes(&file).expect_err("refused");
        assert!(err.starts_with("include[0]: "), "{err}");
    }
}
