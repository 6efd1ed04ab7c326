//! Rules judged on event, ref and changed paths; the fail-closed job filter.

use crate::rules::{Rule, RuleContext, RuleEvent, allows, keep_jobs, uses_changes};
use crate::template::parse_repo_file;
use proptest::prelude::*;

fn rule(event: &[RuleEvent], branch: &[&str], tag: &[&str], changes: &[&str]) -> Rule {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect();
    Rule {
        event: event.to_vec(),
        branch: s(branch),
        tag: s(tag),
        changes: s(changes),
    }
}

#[test]
fn a_ref_becomes_a_branch_or_a_tag_and_a_tag_push_is_the_tag_event() {
    let c = RuleContext::of_ref(RuleEvent::Push, "refs/tags/v1.2", None);
    assert_eq!(
        (c.event, c.branch, c.tag),
        (RuleEvent::Tag, None, Some("v1.2"))
    );
    let c = RuleContext::of_ref(RuleEvent::Api, "refs/tags/v1", None);
    assert_eq!(
        c.event,
        RuleEvent::Api,
        "only a push of a tag is the tag event"
    );
    let c = RuleContext::of_ref(RuleEvent::Push, "refs/heads/release/1", None);
    assert_eq!((c.branch, c.tag), (Some("release/1"), None));
    assert_eq!(
        RuleContext::of_ref(RuleEvent::Api, "main", None).branch,
        Some("main")
    );
    assert_eq!(
        RuleContext::of_ref(RuleEvent::Api, "refs/pull/3/head", None).branch,
        None
    );
}

#[test]
fn keys_are_anded_and_lists_ored() {
    let changed = vec!["src/a/b.rs".to_owned(), "README.md".to_owned()];
    let push_main = RuleContext::of_ref(RuleEvent::Push, "refs/heads/main", Some(&changed));
    let push_rel = RuleContext::of_ref(RuleEvent::Push, "refs/heads/release/1.2", Some(&changed));
    let push_deep = RuleContext::of_ref(RuleEvent::Push, "refs/heads/release/1/2", None);
    let tag = RuleContext::of_ref(RuleEvent::Push, "refs/tags/v1", None);
    let r = rule(&[RuleEvent::Push], &["main", "release/*"], &[], &[]);
    assert!(r.matches(&push_main));
    assert!(r.matches(&push_rel));
    assert!(!r.matches(&push_deep), "* stays within a segment");
    assert!(!r.matches(&tag), "a branch list never matches a tag");
    assert!(rule(&[], &[], &["v*"], &[]).matches(&tag));
    assert!(!rule(&[], &[], &["v*"], &[]).matches(&push_main));
    assert!(rule(&[], &["main"], &[], &["src/**"]).matches(&push_main));
    assert!(rule(&[], &["main"], &[], &["Cargo.lock", "*.md"]).matches(&push_main));
    assert!(!rule(&[], &["main"], &[], &["docs/**"]).matches(&push_main));
    assert!(
        !rule(&[], &["main"], &[], &["*.rs"]).matches(&push_main),
        "*.rs is the root only"
    );
    assert!(
        rule(&[], &[], &[], &["docs/**"]).matches(&tag),
        "changes match when the changed paths are unknown"
    );
    assert!(!rule(&[RuleEvent::PullRequest], &[], &[], &[]).matches(&push_main));
    assert!(allows(&[], &push_main), "no rules: always");
    assert!(allows(
        &[
            rule(&[RuleEvent::Api], &[], &[], &[]),
            rule(&[RuleEvent::Push], &[], &[], &[])
        ],
        &push_main
    ));
}

#[test]
fn a_job_that_needs_a_left_out_job_is_left_out_too() {
    let f = parse_repo_file(
        "jobs:\n\
         - name: build\n  script: [b]\n\
         - name: deploy\n  script: [d]\n  needs: [build]\n  rules: [{branch: [main]}]\n\
         - name: smoke\n  script: [s]\n  needs: [deploy]\n\
         - name: lint\n  script: [l]\n",
        ".gitweave.yml",
    )
    .expect("parse");
    let t = f.pipeline.expect("jobs");
    assert!(!uses_changes(&f.rules, Some(&t)));
    let main = RuleContext::of_ref(RuleEvent::Push, "refs/heads/main", None);
    let (kept, out) = keep_jobs(&t, &main);
    assert_eq!(kept.expect("kept").jobs.len(), 4);
    assert!(out.is_empty());
    let dev = RuleContext::of_ref(RuleEvent::Push, "refs/heads/dev", None);
    let (kept, out) = keep_jobs(&t, &dev);
    let names: Vec<String> = kept
        .expect("kept")
        .jobs
        .iter()
        .map(|j| j.name.to_string())
        .collect();
    assert_eq!(names, ["build", "lint"]);
    assert_eq!(
        out.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["deploy", "smoke"]
    );
}

fn arb_event() -> impl Strategy<Value = RuleEvent> {
    prop::sample::select(RuleEvent::ALL.to_vec())
}

proptest! {
    /// A rule's keys are ANDed: a rule matches exactly when each of its one-key parts does,
    /// and a rule without keys matches everything.
    #[test]
    fn a_rule_is_the_and_of_its_keys(
        events in prop::collection::vec(arb_event(), 0..3),
        branches in prop::collection::vec("[a-c]{1,2}(/[a-c*]{1,2})?", 0..3),
        changes in prop::collection::vec("[a-c*]{1,2}(/\\*\\*)?", 0..3),
        event in arb_event(),
        branch in "[a-c]{1,2}(/[a-c]{1,2})?",
        changed in prop::option::of(prop::collection::vec("[a-c]{1,2}(/[a-c]{1,2})?", 0..4)),
    ) {
        let full = Rule { event: events.clone(), branch: branches.clone(), tag: vec![], changes: changes.clone() };
        let git_ref = format!("refs/heads/{branch}");
        let ctx = RuleContext::of_ref(event, &git_ref, changed.as_deref());
        let parts = [
            Rule { event: events, ..Rule::default() },
            Rule { branch: branches, ..Rule::default() },
            Rule { changes, ..Rule::default() },
        ];
        prop_assert_eq!(full.matches(&ctx), parts.iter().all(|p| p.matches(&ctx)));
        prop_assert!(Rule::default().matches(&ctx));
    }

    /// Whatever the rules, the kept jobs never need a job that is not kept, and every job
    /// is either kept or reported left out.
    #[test]
    fn kept_jobs_never_need_a_left_out_job(
        mains in prop::collection::vec(any::<bool>(), 1..8),
        needs in prop::collection::vec(prop::option::of(0usize..8), 1..8),
        on_main in any::<bool>(),
    ) {
        let n = mains.len().min(needs.len());
        let mut src = String::from("jobs:\n");
        for i in 0..n {
            src.push_str(&format!("- name: j{i}\n  script: [x]\n"));
            if let Some(d) = needs[i].filter(|d| *d < i) {
                src.push_str(&format!("  needs: [j{d}]\n"));
            }
            if mains[i] {
                src.push_str("  rules: [{branch: [main]}]\n");
            }
        }
        let t = parse_repo_file(&src, ".gitweave.yml").expect("parse").pipeline.expect("jobs");
        let git_ref = if on_main { "refs/heads/main" } else { "refs/heads/dev" };
        let (kept, out) = keep_jobs(&t, &RuleContext::of_ref(RuleEvent::Push, git_ref, None));
        let kept = kept.map(|k| k.jobs).unwrap_or_default();
        prop_assert_eq!(kept.len() + out.len(), n);
        for j in &kept {
            for need in &j.needs {
                prop_assert!(kept.iter().any(|k| &k.name == need), "{} needs {} which is left out", j.name, need);
            }
        }
        if on_main {
            prop_assert!(out.is_empty());
        }
    }
}
