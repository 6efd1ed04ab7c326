//! Unit and property tests of [`plan_run`]: job names, stage order, `needs` wiring and the
//! first plan step, against templates parsed from generated YAML.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{PlanError, PlannedRun, Stage, StoredJob, plan_run, replan, select};
use crate::limits::Limit;
use crate::plan::{self, Action, JobState, Node};
use crate::status::RunStatus;
use crate::template::{Template, When, parse_template};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// One generated job: its `when` and the jobs (of its template) it names in `needs`.
#[derive(Debug, Clone)]
struct GenJob {
    when: When,
    needs: Vec<usize>,
}

fn yaml(jobs: &[GenJob]) -> String {
    let mut out = String::from("inputs:\n  who: { default: nobody }\njobs:\n");
    for (k, j) in jobs.iter().enumerate() {
        out.push_str(&format!(
            "  - name: j{k}\n    image: busybox\n    script: [\"echo ${{{{ inputs.who }}}} {k}\"]\n    when: {}\n",
            j.when.as_str()
        ));
        if !j.needs.is_empty() {
            let names: Vec<String> = j.needs.iter().map(|n| format!("j{n}")).collect();
            out.push_str(&format!("    needs: [{}]\n", names.join(", ")));
        }
    }
    out
}

fn parsed(jobs: &[GenJob]) -> Template {
    parse_template(&yaml(jobs)).unwrap_or_else(|e| panic!("{e}\n{}", yaml(jobs)))
}

/// A template of 1 to 5 jobs whose `needs` follow a random order of its jobs (so they may
/// point forward in the file, as templates allow, but never form a cycle).
fn template() -> impl Strategy<Value = Vec<GenJob>> {
    (1usize..=5)
        .prop_flat_map(|n| {
            let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
            let whens = prop::collection::vec(
                prop::sample::select(vec![When::OnSuccess, When::Manual, When::Always]),
                n,
            );
            let masks = prop::collection::vec(any::<u8>(), n);
            let dag = any::<bool>();
            (order, whens, masks, dag)
        })
        .prop_map(|(order, whens, masks, dag)| {
            let rank = |k: usize| order.iter().position(|&o| o == k).unwrap();
            (0..order.len())
                .map(|k| GenJob {
                    when: whens[k],
                    needs: if dag {
                        (0..order.len())
                            .filter(|&m| rank(m) < rank(k) && masks[k] & (1 << m) != 0)
                            .collect()
                    } else {
                        vec![]
                    },
                })
                .collect()
        })
}

/// 1 to 4 attached templates, and the trigger's `templates` list (`None`, or some of them in
/// any order).
fn pipeline() -> impl Strategy<Value = (Vec<Vec<GenJob>>, Option<Vec<usize>>)> {
    prop::collection::vec(template(), 1..=4).prop_flat_map(|ts| {
        let n = ts.len();
        let only = prop::option::of(
            prop::sample::subsequence((0..n).collect::<Vec<_>>(), 1..=n).prop_shuffle(),
        );
        (Just(ts), only)
    })
}

/// What a trigger of attached templates `t0`, `t1`, … plans: [`select`], then [`plan_run`].
/// Answers the selected indexes too.
fn plan_of(
    templates: &[Template],
    only: Option<&[String]>,
    inputs: &BTreeMap<String, String>,
) -> Result<(Vec<usize>, PlannedRun), PlanError> {
    let names: Vec<String> = (0..templates.len()).map(|i| format!("t{i}")).collect();
    let attached: Vec<&str> = names.iter().map(String::as_str).collect();
    let selected = select(&attached, only)?;
    let defaults = BTreeMap::new();
    let stages: Vec<Stage<'_>> = selected
        .iter()
        .map(|&i| Stage {
            name: &names[i],
            template: &templates[i],
            defaults: &defaults,
            dag: None,
        })
        .collect();
    Ok((selected.clone(), plan_run(&stages, inputs)?))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn names_stages_needs_and_the_first_step_follow_the_templates((shape, only) in pipeline()) {
        let templates: Vec<Template> = shape.iter().map(|jobs| parsed(jobs)).collect();
        let only_names: Option<Vec<String>> =
            only.as_ref().map(|o| o.iter().map(|i| format!("t{i}")).collect());
        let (selected, run) = plan_of(&templates, only_names.as_deref(), &BTreeMap::new()).unwrap();

        // A rerun of the stored jobs plans exactly the same run.
        let stored: Vec<StoredJob> = run
            .jobs
            .iter()
            .map(|j| StoredJob {
                stage: j.stage,
                name: j.name.clone(),
                job: j.job.clone(),
                depends_on: j.depends_on.clone(),
            })
            .collect();
        prop_assert_eq!(&replan(stored), &run);

        // Stage order: the selected templates in attach order, whatever order was asked for.
        let mut expected_templates: Vec<usize> = only.clone().unwrap_or_else(|| (0..shape.len()).collect());
        expected_templates.sort_unstable();
        prop_assert_eq!(&selected, &expected_templates);

        // Names and stages: template after template, each in file order.
        let mut expected = Vec::new();
        for (stage, &t) in expected_templates.iter().enumerate() {
            for k in 0..shape[t].len() {
                expected.push((stage, t, k));
            }
        }
        prop_assert_eq!(run.jobs.len(), expected.len());
        for (job, &(stage, t, k)) in run.jobs.iter().zip(&expected) {
            prop_assert_eq!(&job.name, &format!("t{t}/j{k}"));
            prop_assert_eq!(job.job.name.as_str(), format!("j{k}"));
            prop_assert_eq!(job.stage, stage);
            prop_assert_eq!(&job.job.script, &vec![format!("echo nobody {k}")]);
        }

        // `needs` wiring: a template with needs is a DAG (a job without needs waits for the
        // whole previous stage); one without chains its jobs, the first waiting for the
        // whole previous stage.
        let index_of = |stage: usize, k: usize| {
            expected.iter().position(|&(s, _, kk)| s == stage && kk == k).unwrap()
        };
        for (i, &(stage, t, k)) in expected.iter().enumerate() {
            let previous_stage: Vec<usize> = if stage == 0 {
                vec![]
            } else {
                (0..shape[expected_templates[stage - 1]].len()).map(|m| index_of(stage - 1, m)).collect()
            };
            let is_dag = shape[t].iter().any(|j| !j.needs.is_empty());
            let mut want: Vec<usize> = if is_dag && !shape[t][k].needs.is_empty() {
                shape[t][k].needs.iter().map(|&m| index_of(stage, m)).collect()
            } else if !is_dag && k > 0 {
                vec![index_of(stage, k - 1)]
            } else {
                previous_stage
            };
            want.sort_unstable();
            let mut got = run.jobs[i].depends_on.clone();
            got.sort_unstable();
            prop_assert_eq!(got, want, "job {}", run.jobs[i].name);
        }

        // The first step: every job without dependencies is offered (or waits for approval
        // when manual); the others wait. Nothing has ended, so nothing is skipped.
        let mut actions = Vec::new();
        for (i, job) in run.jobs.iter().enumerate() {
            let want = match (job.depends_on.is_empty(), job.job.when) {
                (false, _) => JobState::Pending,
                (true, When::Manual) => JobState::Manual,
                (true, _) => JobState::Released,
            };
            prop_assert_eq!(job.state, want, "job {}", job.name);
            match want {
                JobState::Released => actions.push(Action::Release(i)),
                JobState::Manual => actions.push(Action::AwaitApproval(i)),
                _ => {}
            }
        }
        prop_assert_eq!(&run.actions, &actions);
        prop_assert_eq!(run.released(), actions.iter().filter(|a| matches!(a, Action::Release(_))).count());
        let status = if run.released() > 0 { RunStatus::Queued } else { RunStatus::Blocked };
        prop_assert_eq!(run.run_status, status);

        // It is the planner's own first step, and a fixpoint of it.
        let nodes: Vec<Node> = run.jobs.iter().map(|j| Node {
            state: j.state,
            depends_on: j.depends_on.clone(),
            allow_failure: j.job.allow_failure,
            when: j.job.when,
        }).collect();
        let again = plan::advance(&nodes);
        prop_assert!(again.actions.is_empty(), "{:?}", again.actions);
        prop_assert_eq!(again.run_status, run.run_status);
    }
}

fn one(jobs: usize) -> Template {
    parsed(&vec![
        GenJob {
            when: When::OnSuccess,
            needs: vec![]
        };
        jobs
    ])
}

#[test]
fn inputs_resolve_trigger_then_attachment_then_template() {
    let t = one(1);
    let defaults = BTreeMap::from([("who".to_owned(), "attached".to_owned())]);
    let stages = [Stage {
        name: "t",
        template: &t,
        defaults: &defaults,
        dag: None,
    }];
    let run = plan_run(&stages, &BTreeMap::new()).unwrap();
    assert_eq!(run.jobs[0].job.script, vec!["echo attached 0".to_owned()]);
    let given = BTreeMap::from([("who".to_owned(), "given".to_owned())]);
    let run = plan_run(&stages, &given).unwrap();
    assert_eq!(run.jobs[0].job.script, vec!["echo given 0".to_owned()]);
}

#[test]
fn what_cannot_make_a_run_is_an_error_naming_it() {
    let none = BTreeMap::new();
    assert_eq!(plan_of(&[], None, &none), Err(PlanError::NothingAttached));
    let ts = [one(1), one(2)];
    assert_eq!(
        plan_of(&ts, Some(&[]), &none),
        Err(PlanError::EmptySelection)
    );
    assert_eq!(
        plan_of(&ts, Some(&["t1".to_owned(), "ghost".to_owned()]), &none),
        Err(PlanError::NotAttached("ghost".into()))
    );
    let typo = BTreeMap::from([("whom".to_owned(), "x".to_owned())]);
    let err = plan_of(&ts, None, &typo).unwrap_err();
    assert_eq!(
        err,
        PlanError::UnknownInputs {
            names: vec!["whom".into()],
            templates: vec!["t0".into(), "t1".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "input(s) whom are declared by none of the templates t0, t1"
    );
    let big = one(400);
    let err = plan_of(&[big.clone(), big.clone(), big], None, &none).unwrap_err();
    assert!(
        matches!(&err, PlanError::Limit(l) if l.limit == Limit::RunJobs),
        "{err:?}"
    );
}

/// `needs` may name a job later in the file: a failure must still skip the whole chain that
/// needs it in one step, or the run would wait forever for a job nothing releases.
#[test]
fn a_failure_skips_a_chain_of_needs_that_point_forward_in_the_file() {
    let t = parse_template(
        "jobs:\n  - name: c\n    script: [x]\n    needs: [a]\n  - name: a\n    script: [x]\n    needs: [b]\n  - name: b\n    script: [x]\n",
    )
    .unwrap();
    let defaults = BTreeMap::new();
    let stages = [Stage {
        name: "t",
        template: &t,
        defaults: &defaults,
        dag: None,
    }];
    let run = plan_run(&stages, &BTreeMap::new()).unwrap();
    assert_eq!(run.actions, vec![Action::Release(2)]);
    let mut nodes: Vec<Node> = run
        .jobs
        .iter()
        .map(|j| Node {
            state: j.state,
            depends_on: j.depends_on.clone(),
            allow_failure: j.job.allow_failure,
            when: j.job.when,
        })
        .collect();
    nodes[2].state = JobState::Failed;
    let step = plan::advance(&nodes);
    assert_eq!(step.actions, vec![Action::Skip(1), Action::Skip(0)]);
    assert_eq!(step.run_status, RunStatus::Failed);
}
