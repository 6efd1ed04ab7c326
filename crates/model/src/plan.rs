//! The fail-closed scheduling state machine (SPEC §4), pure so it can be tested exhaustively.
//!
//! A run is a list of jobs in pipeline order, each with the jobs it depends on. Dependencies
//! are made at trigger time by [`dependencies`]: in a template without `needs`, each job
//! depends on the one before it; the first jobs of a stage depend on every job of the stage
//! before; `needs` replace the implicit order inside a template.
//!
//! [`advance`] looks at the current states and says what changes next: which waiting jobs are
//! released to runners, which wait for approval, which are skipped, and whether the run has
//! ended. The caller applies the changes in one transaction, appending an event for each.

use crate::status::{JobStatus, RunStatus};
use crate::template::When;

/// Where one job stands, as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// `queued`, waiting on dependencies (not yet offered to runners).
    Pending,
    /// `queued` and offered to runners.
    Released,
    /// A runner holds it.
    Running,
    /// Waiting for approval.
    Manual,
    /// Exited 0.
    Success,
    /// Failed.
    Failed,
    /// Canceled.
    Canceled,
    /// Skipped.
    Skipped,
}

impl JobState {
    /// The public status of a job in this state.
    pub const fn status(self) -> JobStatus {
        match self {
            JobState::Pending | JobState::Released => JobStatus::Queued,
            JobState::Running => JobStatus::Running,
            JobState::Manual => JobStatus::Manual,
            JobState::Success => JobStatus::Success,
            JobState::Failed => JobStatus::Failed,
            JobState::Canceled => JobStatus::Canceled,
            JobState::Skipped => JobStatus::Skipped,
        }
    }

    const fn is_terminal(self) -> bool {
        self.status().is_terminal()
    }
}

/// One job as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Current state.
    pub state: JobState,
    /// Indexes (into the same slice) of the jobs it waits for.
    pub depends_on: Vec<usize>,
    /// Its failure neither stops nor fails the run.
    pub allow_failure: bool,
    /// When it runs.
    pub when: When,
}

/// A change the planner asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Offer the job to runners.
    Release(usize),
    /// Put the job in `manual`, waiting for approval.
    AwaitApproval(usize),
    /// It can no longer run.
    Skip(usize),
}

impl Action {
    /// The job it acts on.
    pub fn job(self) -> usize {
        match self {
            Self::Release(i) | Self::AwaitApproval(i) | Self::Skip(i) => i,
        }
    }
}

/// What [`advance`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Changes to make, in order.
    pub actions: Vec<Action>,
    /// The run's status after the actions.
    pub run_status: RunStatus,
}

/// One job of a template, for [`dependencies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageJob {
    /// Stage (template) index, 0-based, in pipeline order.
    pub stage: usize,
    /// Indexes (into the whole pipeline) of the jobs named in `needs`; empty when none.
    pub needs: Vec<usize>,
}

/// Computes each job's dependencies from stages and `needs` (see the module doc).
/// `jobs` is in pipeline order; `dag[stage]` says whether that stage's template uses `needs`.
pub fn dependencies(jobs: &[StageJob], dag: &[bool]) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let stage_start = jobs[..i]
            .iter()
            .rposition(|j| j.stage != job.stage)
            .map_or(0, |p| p + 1);
        let previous_stage: Vec<usize> = jobs[..stage_start]
            .iter()
            .enumerate()
            .filter(|(_, j)| stage_start > 0 && j.stage == jobs[stage_start - 1].stage)
            .map(|(k, _)| k)
            .collect();
        let is_dag = dag.get(job.stage).copied().unwrap_or(false);
        let deps = if is_dag {
            if job.needs.is_empty() {
                previous_stage
            } else {
                job.needs.clone()
            }
        } else if i > stage_start {
            vec![i - 1]
        } else {
            previous_stage
        };
        out.push(deps);
    }
    out
}

/// For each job, the stage it waits on as a whole, if any: `Some(t)` when its dependencies
/// include every job of stage `t` (the stage of its first dependency), as the first jobs of a
/// stage wait on the whole stage before. `stages[i]` is job `i`'s stage, `deps` what
/// [`dependencies`] made. Stored with the job (`jobs.needs_stage`), it lets the database see
/// that such a job also waits on any other job of that stage without searching its list
/// ([`unmoved_by`], bench/FINDINGS.md #27).
pub fn whole_stage_needs<D: AsRef<[usize]>>(stages: &[usize], deps: &[D]) -> Vec<Option<usize>> {
    let mut size = std::collections::HashMap::<usize, usize>::new();
    for &s in stages {
        *size.entry(s).or_default() += 1;
    }
    deps.iter()
        .map(|d| {
            let d = d.as_ref();
            let t = *stages.get(*d.first()?)?;
            let mut of_t: Vec<usize> = d
                .iter()
                .copied()
                .filter(|&k| stages.get(k) == Some(&t))
                .collect();
            of_t.sort_unstable();
            of_t.dedup();
            (of_t.len() == size[&t]).then_some(t)
        })
        .collect()
}

/// A job "taints" its dependents when it ended without success that counts: failed (unless
/// `allow_failure`), skipped or canceled — or when anything upstream of it did. Tainted
/// dependents are skipped unless they are `when: always`.
fn tainted(nodes: &[Node]) -> Vec<bool> {
    let mut t: Vec<bool> = nodes.iter().map(taints_by_itself).collect();
    // `needs` may name a job later in the file, so pipeline order need not be a topological
    // order: pass again until nothing changes (one more pass when it is one).
    loop {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            if !t[i] && n.depends_on.iter().any(|&d| t[d]) {
                t[i] = true;
                changed = true;
            }
        }
        if !changed {
            return t;
        }
    }
}

/// `nodes` with `states` in place of their own.
fn with_states(nodes: &[Node], states: &[JobState]) -> Vec<Node> {
    nodes
        .iter()
        .zip(states)
        .map(|(n, s)| Node {
            state: *s,
            ..n.clone()
        })
        .collect()
}

/// Whether a job's own end taints its dependents (not what is upstream of it).
fn taints_by_itself(n: &Node) -> bool {
    match n.state {
        JobState::Failed => !n.allow_failure,
        JobState::Skipped | JobState::Canceled => true,
        _ => false,
    }
}

/// The jobs that made job `i` skipped, for its `job.skipped` reason: the nearest jobs upstream
/// of it that did not succeed and so taint it (failed without `allow_failure`, skipped or
/// canceled). A dependency that succeeded (a `when: always` job after a failure) or failed with
/// `allow_failure` is never named: the walk goes past it to what tainted it. In pipeline order,
/// each once; empty when nothing upstream is tainted. `nodes` are the states after the step
/// that skipped `i` ([`Step::applied`]).
pub fn blockers(nodes: &[Node], i: usize) -> Vec<usize> {
    let taint = tainted(nodes);
    let mut seen = vec![false; nodes.len()];
    let mut found = Vec::new();
    let mut todo: Vec<usize> = nodes
        .get(i)
        .map(|n| n.depends_on.clone())
        .unwrap_or_default();
    while let Some(d) = todo.pop() {
        // `needs` may point forward in the file: `seen` alone ends the walk.
        if d == i || seen[d] || !taint[d] {
            continue;
        }
        seen[d] = true;
        if taints_by_itself(&nodes[d]) {
            found.push(d);
        } else {
            todo.extend(nodes[d].depends_on.iter().copied());
        }
    }
    found.sort_unstable();
    found
}

impl Step {
    /// `nodes` with this step's actions applied: what the planner saw when it decided them.
    pub fn applied(&self, nodes: &[Node]) -> Vec<Node> {
        let mut out = nodes.to_vec();
        for a in &self.actions {
            let (i, state) = match *a {
                Action::Release(i) => (i, JobState::Released),
                Action::AwaitApproval(i) => (i, JobState::Manual),
                Action::Skip(i) => (i, JobState::Skipped),
            };
            if let Some(n) = out.get_mut(i) {
                n.state = state;
            }
        }
        out
    }
}

/// Decides what happens next. Applying the returned actions and calling again yields no
/// further actions (the result is a fixpoint).
pub fn advance(nodes: &[Node]) -> Step {
    let mut states: Vec<JobState> = nodes.iter().map(|n| n.state).collect();
    let mut actions = Vec::new();
    // Skipping a job can settle the dependencies of another, so walk in pipeline order and
    // recompute taint as states change; `needs` may point forward in the file, so walk again
    // until a pass changes nothing.
    loop {
        let before = actions.len();
        for i in 0..nodes.len() {
            if states[i] != JobState::Pending {
                continue;
            }
            let deps = &nodes[i].depends_on;
            if !deps.iter().all(|&d| states[d].is_terminal()) {
                continue;
            }
            let taint = tainted(&with_states(nodes, &states));
            let upstream_ok = !deps.iter().any(|&d| taint[d]);
            let action = match (nodes[i].when, upstream_ok) {
                (When::Always, _) | (When::OnSuccess, true) => Action::Release(i),
                (When::Manual, true) => Action::AwaitApproval(i),
                (When::OnSuccess | When::Manual, false) => Action::Skip(i),
            };
            states[i] = match action {
                Action::Release(_) => JobState::Released,
                Action::AwaitApproval(_) => JobState::Manual,
                Action::Skip(_) => JobState::Skipped,
            };
            actions.push(action);
        }
        if actions.len() == before {
            break;
        }
    }
    let final_nodes = with_states(nodes, &states);
    Step {
        actions,
        run_status: run_status(&final_nodes),
    }
}

/// Which kinds of state a run's jobs are in: what [`shortcut`] needs, and cheap for the
/// database to answer (three index look-ups) without sending every job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Some job waits on its dependencies ([`JobState::Pending`]).
    pub pending: bool,
    /// Some job is offered to runners or running ([`JobState::Released`], [`JobState::Running`]).
    pub active: bool,
    /// Some job started or settled ([`JobState::Running`] or any terminal state).
    pub started: bool,
}

impl Summary {
    /// Summarises the jobs of a run.
    pub fn of(nodes: &[Node]) -> Self {
        let mut s = Self::default();
        for n in nodes {
            match n.state {
                JobState::Pending => s.pending = true,
                JobState::Released => s.active = true,
                JobState::Running => {
                    s.active = true;
                    s.started = true;
                }
                JobState::Manual => {}
                _ => s.started = true,
            }
        }
        s
    }
}

/// What [`advance`] would answer, from the summary alone, when it settles it: no job waits for
/// its dependencies (so there is nothing to release or skip) and some job is still offered or
/// running (so the run has not ended and is not blocked). Then the run is `running` once any
/// job started, else `queued`. `None`: the whole plan is needed. This spares re-reading every
/// job of a large run each time one of them ends (bench/FINDINGS.md #5).
pub fn shortcut(s: &Summary) -> Option<RunStatus> {
    if s.pending || !s.active {
        return None;
    }
    Some(if s.started {
        RunStatus::Running
    } else {
        RunStatus::Queued
    })
}

/// Whether a change of job `x`'s state alone cannot have made a pending job ready, as the
/// database checks it (`gitweave_storage::jobs::plan_summary`, with `n` another unfinished
/// job of `x`'s stage): `x` is not pending itself, `n` is not terminal, and every pending job
/// that depends on `x` also depends on `n`. The plan was a fixpoint before `x` changed, so no other pending job is
/// ready either, and [`shortcut`] may treat the pending jobs as if there were none. This
/// spares re-reading a run whose second stage waits on every job of its first each time one
/// of them ends (bench/FINDINGS.md #21). The database takes a pending job that waits on the
/// whole of `x`'s stage ([`whole_stage_needs`]) as waiting on `n` without searching its list,
/// which is the same answer when `n` is of that stage (#27).
pub fn unmoved_by(nodes: &[Node], x: usize, n: usize) -> bool {
    x != n
        && nodes.get(x).is_some_and(|x| x.state != JobState::Pending)
        && nodes.get(n).is_some_and(|n| !n.state.is_terminal())
        && nodes
            .iter()
            .filter(|d| d.state == JobState::Pending && d.depends_on.contains(&x))
            .all(|d| d.depends_on.contains(&n))
}

/// The run's status from its jobs' states (a canceled run is marked by the caller).
pub fn run_status(nodes: &[Node]) -> RunStatus {
    let all_terminal = nodes.iter().all(|n| n.state.is_terminal());
    if all_terminal {
        let failed = nodes.iter().any(|n| match n.state {
            JobState::Failed => !n.allow_failure,
            JobState::Canceled => true,
            _ => false,
        });
        return if failed {
            RunStatus::Failed
        } else {
            RunStatus::Success
        };
    }
    let started = nodes.iter().any(|n| {
        n.state != JobState::Pending && n.state != JobState::Released && n.state != JobState::Manual
    });
    let active = nodes
        .iter()
        .any(|n| matches!(n.state, JobState::Released | JobState::Running));
    if !active && nodes.iter().any(|n| n.state == JobState::Manual) {
        RunStatus::Blocked
    } else if started {
        RunStatus::Running
    } else {
        RunStatus::Queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(n: usize) -> Vec<Vec<usize>> {
        dependencies(
            &(0..n)
                .map(|_| StageJob {
                    stage: 0,
                    needs: vec![],
                })
                .collect::<Vec<_>>(),
            &[false],
        )
    }

    fn nodes(states: &[JobState], deps: Vec<Vec<usize>>) -> Vec<Node> {
        states
            .iter()
            .zip(deps)
            .map(|(s, d)| Node {
                state: *s,
                depends_on: d,
                allow_failure: false,
                when: When::OnSuccess,
            })
            .collect()
    }

    fn apply(nodes: &mut [Node], step: &Step) {
        for a in &step.actions {
            match *a {
                Action::Release(i) => nodes[i].state = JobState::Released,
                Action::AwaitApproval(i) => nodes[i].state = JobState::Manual,
                Action::Skip(i) => nodes[i].state = JobState::Skipped,
            }
        }
    }

    #[test]
    fn sequential_dependencies_chain_and_cross_stages() {
        let jobs = vec![
            StageJob {
                stage: 0,
                needs: vec![],
            },
            StageJob {
                stage: 0,
                needs: vec![],
            },
            StageJob {
                stage: 1,
                needs: vec![],
            },
            StageJob {
                stage: 2,
                needs: vec![],
            },
            StageJob {
                stage: 2,
                needs: vec![3],
            },
            StageJob {
                stage: 2,
                needs: vec![],
            },
        ];
        let deps = dependencies(&jobs, &[false, false, true]);
        assert_eq!(deps[0], Vec::<usize>::new());
        assert_eq!(deps[1], vec![0]);
        assert_eq!(deps[2], vec![0, 1]);
        assert_eq!(deps[3], vec![2]);
        assert_eq!(deps[4], vec![3]);
        assert_eq!(deps[5], vec![2]);
    }

    #[test]
    fn first_job_is_released_and_run_is_queued() {
        let n = nodes(&[JobState::Pending; 3], seq(3));
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Release(0)]);
        assert_eq!(step.run_status, RunStatus::Queued);
    }

    #[test]
    fn success_releases_the_next_job() {
        let n = nodes(
            &[JobState::Success, JobState::Pending, JobState::Pending],
            seq(3),
        );
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Release(1)]);
        assert_eq!(step.run_status, RunStatus::Running);
    }

    #[test]
    fn failure_skips_every_later_job_and_fails_the_run() {
        let n = nodes(
            &[JobState::Failed, JobState::Pending, JobState::Pending],
            seq(3),
        );
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Skip(1), Action::Skip(2)]);
        assert_eq!(step.run_status, RunStatus::Failed);
    }

    #[test]
    fn always_jobs_run_after_failure_but_do_not_clear_it() {
        let mut n = nodes(
            &[
                JobState::Failed,
                JobState::Pending,
                JobState::Pending,
                JobState::Pending,
            ],
            seq(4),
        );
        n[2].when = When::Always;
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Skip(1), Action::Release(2)]);
        apply(&mut n, &step);
        n[2].state = JobState::Success;
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Skip(3)]);
        assert_eq!(step.run_status, RunStatus::Failed);
    }

    #[test]
    fn allowed_failure_lets_the_pipeline_continue_and_succeed() {
        let mut n = nodes(&[JobState::Failed, JobState::Pending], seq(2));
        n[0].allow_failure = true;
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Release(1)]);
        apply(&mut n, &step);
        n[1].state = JobState::Success;
        assert_eq!(advance(&n).run_status, RunStatus::Success);
    }

    #[test]
    fn a_skipped_job_names_only_the_upstream_jobs_that_did_not_succeed() {
        // c needs a (succeeded) and b (failed): only b is why c is skipped.
        let n = nodes(
            &[JobState::Success, JobState::Failed, JobState::Pending],
            vec![vec![], vec![], vec![0, 1]],
        );
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Skip(2)]);
        assert_eq!(blockers(&step.applied(&n), 2), vec![1]);
    }

    #[test]
    fn blockers_go_past_a_job_that_succeeded_after_a_failure() {
        // 0 fails, 1 (`when: always`) succeeds, 2 needs 1 and is skipped because of 0; 3 waits
        // for 2, skipped in the same step, and names 2.
        let mut n = nodes(
            &[
                JobState::Failed,
                JobState::Success,
                JobState::Pending,
                JobState::Pending,
            ],
            seq(4),
        );
        n[1].when = When::Always;
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Skip(2), Action::Skip(3)]);
        let after = step.applied(&n);
        assert_eq!(blockers(&after, 2), vec![0]);
        assert_eq!(blockers(&after, 3), vec![2]);
    }

    #[test]
    fn an_allowed_failure_is_not_a_blocker() {
        let mut n = nodes(
            &[JobState::Failed, JobState::Canceled, JobState::Pending],
            vec![vec![], vec![], vec![0, 1]],
        );
        n[0].allow_failure = true;
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::Skip(2)]);
        assert_eq!(blockers(&step.applied(&n), 2), vec![1]);
    }

    #[test]
    fn manual_job_blocks_the_run_until_approved() {
        let mut n = nodes(
            &[JobState::Success, JobState::Pending, JobState::Pending],
            seq(3),
        );
        n[1].when = When::Manual;
        let step = advance(&n);
        assert_eq!(step.actions, vec![Action::AwaitApproval(1)]);
        assert_eq!(step.run_status, RunStatus::Blocked);
    }

    #[derive(Debug, Clone)]
    struct Scenario {
        deps: Vec<Vec<usize>>,
        allow_failure: Vec<bool>,
        when: Vec<When>,
        outcomes: Vec<bool>,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (1usize..12).prop_flat_map(|n| {
            let deps = (0..n)
                .map(|i| {
                    proptest::collection::vec(0..i.max(1), 0..=i.min(3)).prop_map(move |v| {
                        let mut v: Vec<usize> = v.into_iter().filter(|&d| d < i).collect();
                        v.sort_unstable();
                        v.dedup();
                        v
                    })
                })
                .collect::<Vec<_>>();
            (
                deps,
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(
                    prop_oneof![
                        Just(When::OnSuccess),
                        Just(When::Always),
                        Just(When::OnSuccess)
                    ],
                    n,
                ),
                proptest::collection::vec(any::<bool>(), n),
            )
                .prop_map(|(deps, allow_failure, when, outcomes)| Scenario {
                    deps,
                    allow_failure,
                    when,
                    outcomes,
                })
        })
    }

    /// Drives a whole run: released jobs run in order and succeed or fail as drawn.
    fn drive(s: &Scenario) -> (Vec<Node>, RunStatus) {
        let mut n: Vec<Node> = (0..s.deps.len())
            .map(|i| Node {
                state: JobState::Pending,
                depends_on: s.deps[i].clone(),
                allow_failure: s.allow_failure[i],
                when: s.when[i],
            })
            .collect();
        for _ in 0..100 {
            let step = advance(&n);
            apply(&mut n, &step);
            assert!(advance(&n).actions.is_empty(), "advance is a fixpoint");
            let Some(i) = n.iter().position(|x| x.state == JobState::Released) else {
                return (n.clone(), step.run_status);
            };
            n[i].state = if s.outcomes[i] {
                JobState::Success
            } else {
                JobState::Failed
            };
        }
        unreachable!("a run of at most 12 jobs ends within 100 steps");
    }

    /// The jobs of `s`, job `i` in `states[i]`.
    fn nodes_in(s: &Scenario, states: &[JobState]) -> Vec<Node> {
        (0..s.deps.len())
            .map(|i| Node {
                state: states[i],
                depends_on: s.deps[i].clone(),
                allow_failure: s.allow_failure[i],
                when: s.when[i],
            })
            .collect()
    }

    fn any_state() -> impl Strategy<Value = JobState> {
        prop_oneof![
            Just(JobState::Pending),
            Just(JobState::Released),
            Just(JobState::Running),
            Just(JobState::Manual),
            Just(JobState::Success),
            Just(JobState::Failed),
            Just(JobState::Canceled),
            Just(JobState::Skipped),
        ]
    }

    /// What the database checks for [`unmoved_by`] (`jobs::plan_summary`): a pending job that
    /// waits on the whole stage of `x` (`needs_stage`) is taken as waiting on `n` without a
    /// search of its list.
    fn unmoved_by_with_stage_needs(
        nodes: &[Node],
        needs_stage: &[Option<usize>],
        stages: &[usize],
        x: usize,
        n: usize,
    ) -> bool {
        x != n
            && nodes[x].state != JobState::Pending
            && !nodes[n].state.is_terminal()
            && nodes.iter().zip(needs_stage).all(|(d, need)| {
                d.state != JobState::Pending
                    || *need == Some(stages[x])
                    || !d.depends_on.contains(&x)
                    || d.depends_on.contains(&n)
            })
    }

    /// Stages of up to 5 templates of 1 to 4 jobs each, some with `needs`.
    fn staged() -> impl Strategy<Value = (Vec<StageJob>, Vec<bool>)> {
        proptest::collection::vec((1usize..5, any::<bool>()), 1..6).prop_flat_map(|sizes| {
            let jobs: usize = sizes.iter().map(|s| s.0).sum();
            let dag: Vec<bool> = sizes.iter().map(|s| s.1).collect();
            (
                Just(sizes),
                Just(dag),
                proptest::collection::vec(proptest::collection::vec(0usize..4, 0..3), jobs),
            )
                .prop_map(|(sizes, dag, needs)| {
                    let mut out = Vec::new();
                    let mut start = 0;
                    for (stage, &(size, _)) in sizes.iter().enumerate() {
                        for k in 0..size {
                            let mut need: Vec<usize> = needs[start + k]
                                .iter()
                                .map(|&o| start + o % size)
                                .filter(|&p| p != start + k)
                                .collect();
                            need.sort_unstable();
                            need.dedup();
                            out.push(StageJob { stage, needs: need });
                        }
                        start += size;
                    }
                    (out, dag)
                })
        })
    }

    proptest! {
        /// Whenever the counts settle the plan, the whole plan agrees: no action, same status.
        #[test]
        fn the_shortcut_agrees_with_the_whole_plan(
            s in scenario(),
            states in proptest::collection::vec(any_state(), 12),
        ) {
            let nodes = nodes_in(&s, &states);
            if let Some(status) = shortcut(&Summary::of(&nodes)) {
                let step = advance(&nodes);
                prop_assert!(step.actions.is_empty(), "{:?}", step.actions);
                prop_assert_eq!(step.run_status, status);
            }
        }

        /// From a fixpoint of the plan, one job's new state: when [`unmoved_by`] holds, the
        /// shortcut (told that no pending job is ready) agrees with the whole plan.
        #[test]
        fn a_change_unmoved_by_agrees_with_the_whole_plan(
            s in scenario(),
            states in proptest::collection::vec(any_state(), 12),
            x in 0usize..12,
            n in 0usize..12,
            to in any_state(),
        ) {
            let mut nodes = nodes_in(&s, &states);
            let step = advance(&nodes);
            nodes = step.applied(&nodes);
            let (x, n) = (x % nodes.len(), n % nodes.len());
            nodes[x].state = to;
            if unmoved_by(&nodes, x, n) {
                let kinds = Summary { pending: false, ..Summary::of(&nodes) };
                if let Some(status) = shortcut(&kinds) {
                    let step = advance(&nodes);
                    prop_assert!(step.actions.is_empty(), "{:?}", step.actions);
                    prop_assert_eq!(step.run_status, status);
                }
            }
        }

        /// A second stage waiting on every job of the first is unmoved while the first runs.
        #[test]
        fn a_stage_barrier_is_unmoved_until_its_last_job(first in 2usize..20, second in 1usize..20) {
            let mut nodes: Vec<Node> = (0..first)
                .map(|_| Node { state: JobState::Running, depends_on: vec![], allow_failure: false, when: When::OnSuccess })
                .collect();
            nodes.extend((0..second).map(|_| Node { state: JobState::Pending, depends_on: (0..first).collect(), allow_failure: false, when: When::OnSuccess }));
            for x in 0..first - 1 {
                nodes[x].state = JobState::Success;
                prop_assert!(unmoved_by(&nodes, x, first - 1));
            }
            nodes[first - 1].state = JobState::Success;
            prop_assert!(!unmoved_by(&nodes, first - 1, first - 2), "the last one moves the stage");
        }

        /// `whole_stage_needs` names a stage only when every job of it is a dependency, and
        /// names it for the first jobs of a stage after the first.
        #[test]
        fn whole_stage_needs_names_only_whole_stages((jobs, dag) in staged()) {
            let deps = dependencies(&jobs, &dag);
            let stages: Vec<usize> = jobs.iter().map(|j| j.stage).collect();
            let needs = whole_stage_needs(&stages, &deps);
            for (i, need) in needs.iter().enumerate() {
                if let Some(t) = need {
                    for (k, &s) in stages.iter().enumerate() {
                        if s == *t {
                            prop_assert!(deps[i].contains(&k), "job {} needs stage {} but not {}", i, t, k);
                        }
                    }
                }
                let first_of_stage = i == 0 || stages[i - 1] != stages[i];
                let waits_on_previous = if dag[stages[i]] { jobs[i].needs.is_empty() } else { first_of_stage };
                if stages[i] > 0 && waits_on_previous {
                    prop_assert_eq!(*need, Some(stages[i] - 1));
                }
            }
        }

        /// The database's form of [`unmoved_by`] (whole-stage dependents not searched) agrees
        /// with it whenever `n` is of `x`'s stage, as `plan_summary` always picks it.
        #[test]
        fn unmoved_by_with_stage_needs_agrees(
            (jobs, dag) in staged(),
            states in proptest::collection::vec(any_state(), 20),
            x in 0usize..20,
            n in 0usize..20,
        ) {
            let deps = dependencies(&jobs, &dag);
            let stages: Vec<usize> = jobs.iter().map(|j| j.stage).collect();
            let needs = whole_stage_needs(&stages, &deps);
            let nodes: Vec<Node> = deps
                .iter()
                .enumerate()
                .map(|(i, d)| Node { state: states[i], depends_on: d.clone(), allow_failure: false, when: When::OnSuccess })
                .collect();
            let (x, n) = (x % nodes.len(), n % nodes.len());
            if stages[x] == stages[n] {
                prop_assert_eq!(
                    unmoved_by_with_stage_needs(&nodes, &needs, &stages, x, n),
                    unmoved_by(&nodes, x, n)
                );
            }
        }

        /// A run of many parallel jobs is settled by the counts while its jobs run.
        #[test]
        fn the_shortcut_answers_while_parallel_jobs_run(done in 0usize..20, running in 1usize..5) {
            let mut nodes = vec![Node { state: JobState::Success, depends_on: vec![], allow_failure: false, when: When::OnSuccess }; done];
            nodes.extend((0..running).map(|_| Node { state: JobState::Running, depends_on: vec![], allow_failure: false, when: When::OnSuccess }));
            prop_assert_eq!(shortcut(&Summary::of(&nodes)), Some(RunStatus::Running));
        }

        #[test]
        fn every_run_ends_and_fail_closed_holds(s in scenario()) {
            let (n, status) = drive(&s);
            prop_assert!(n.iter().all(|x| x.state.is_terminal()));
            let hard_failure = n.iter().any(|x| x.state == JobState::Failed && !x.allow_failure);
            prop_assert_eq!(status, if hard_failure { RunStatus::Failed } else { RunStatus::Success });
            for (i, x) in n.iter().enumerate() {
                // A job ran only if each dependency had ended; an on_success job ran only if
                // nothing upstream failed for real.
                if matches!(x.state, JobState::Success | JobState::Failed) {
                    let upstream_bad = tainted(&n).iter().enumerate()
                        .any(|(d, t)| x.depends_on.contains(&d) && *t);
                    if x.when == When::OnSuccess {
                        prop_assert!(!upstream_bad, "job {} ran despite a failed upstream", i);
                    }
                }
                if x.state == JobState::Skipped {
                    prop_assert!(x.when != When::Always);
                    // Its reason names at least one job, each upstream and not a success.
                    let b = blockers(&n, i);
                    prop_assert!(!b.is_empty(), "skipped job {} names no blocker", i);
                    for d in b {
                        prop_assert!(d < i);
                        prop_assert!(n[d].state != JobState::Success, "blocker {} succeeded", d);
                        prop_assert!(!(n[d].state == JobState::Failed && n[d].allow_failure));
                    }
                }
            }
        }
    }
}
