use crate::expand::{ExpandError, RunBudget, expand_job, resolve_inputs};
use crate::template::{
    Artifacts, ArtifactsWhen, Cache, CacheKey, CachePolicy, JobTemplate, parse_template,
};
use std::collections::BTreeMap;
use std::time::Duration;

fn job(extra: &str) -> String {
    format!(
        "inputs:\n  channel: {{ default: stable }}\njobs:\n  - name: build\n    image: rust:1\n    script: [cargo build]\n{extra}"
    )
}

fn parsed(extra: &str) -> JobTemplate {
    match parse_template(&job(extra)) {
        Ok(t) => t.jobs[0].clone(),
        Err(e) => panic!("{extra}: {e}"),
    }
}

fn refused(extra: &str) -> String {
    match parse_template(&job(extra)) {
        Ok(_) => panic!("{extra} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_spec_example_parses_into_its_parts() {
    let j = parsed(
        "    artifacts:\n      paths: [target/release/app, \"dist/**\"]\n      expire_in: 7d\n      when: on_success\n    cache:\n      key: { files: [Cargo.lock], prefix: cargo }\n      paths: [target, .cargo/registry]\n      policy: pull-push\n",
    );
    assert_eq!(
        j.artifacts,
        Some(Artifacts {
            paths: vec!["target/release/app".into(), "dist/**".into()],
            expire_in: Duration::from_secs(7 * 86_400),
            when: ArtifactsWhen::OnSuccess,
        })
    );
    assert_eq!(
        j.cache,
        Some(Cache {
            key: CacheKey::Files {
                files: vec!["Cargo.lock".into()],
                prefix: Some("cargo".into()),
            },
            paths: vec!["target".into(), ".cargo/registry".into()],
            policy: CachePolicy::PullPush,
            resolved: None,
        })
    );
}

#[test]
fn defaults_are_thirty_days_on_success_and_pull_push() {
    let j = parsed(
        "    artifacts: { paths: [out.txt] }\n    cache: { key: deps, paths: [vendor], policy: pull }\n",
    );
    let a = j.artifacts.expect("artifacts");
    assert_eq!(a.expire_in, Duration::from_secs(30 * 86_400));
    assert_eq!(a.when, ArtifactsWhen::OnSuccess);
    let c = j.cache.expect("cache");
    assert_eq!(c.key, CacheKey::Text("deps".into()));
    assert_eq!(c.policy, CachePolicy::Pull);
    let j = parsed(
        "    artifacts: { paths: [out.txt], when: always }\n    cache: { key: deps, paths: [vendor] }\n",
    );
    assert_eq!(j.artifacts.expect("a").when, ArtifactsWhen::Always);
    assert_eq!(j.cache.expect("c").policy, CachePolicy::PullPush);
}

#[test]
fn bad_paths_durations_and_keys_are_refused_saying_where() {
    for (extra, says) in [
        (
            "    artifacts: { paths: [/etc/passwd] }\n",
            "jobs[0].artifacts.paths[0]: path \"/etc/passwd\" is absolute",
        ),
        (
            "    artifacts: { paths: [ok, ../up] }\n",
            "jobs[0].artifacts.paths[1]: path \"../up\" holds \"..\"",
        ),
        (
            "    artifacts: { paths: [out], expire_in: 2w }\n",
            "jobs[0].artifacts.expire_in: invalid duration \"2w\"",
        ),
        (
            "    artifacts: { paths: [out], expire_in: 400d }\n",
            "exceeds the maximum of 365d",
        ),
        (
            "    artifacts: { paths: [] }\n",
            "jobs[0].artifacts.paths must not be empty",
        ),
        (
            "    artifacts: { expire_in: 1d }\n",
            "jobs[0].artifacts.paths is required",
        ),
        (
            "    artifacts: { paths: [\"a/[b\"] }\n",
            "is not a valid glob",
        ),
        (
            "    artifacts: { paths: [a], when: never }\n",
            "unknown variant",
        ),
        (
            "    cache: { key: k, paths: [/root/.cargo] }\n",
            "jobs[0].cache.paths[0]: path \"/root/.cargo\" is absolute",
        ),
        (
            "    cache: { key: k, paths: [\"target/*\"] }\n",
            "holds a glob character",
        ),
        (
            "    cache: { key: k, paths: [a/../../b] }\n",
            "holds \"..\"",
        ),
        (
            "    cache: { paths: [a] }\n",
            "jobs[0].cache.key is required",
        ),
        (
            "    cache: { key: \"a/b\", paths: [a] }\n",
            "jobs[0].cache.key: cache key \"a/b\" holds '/'",
        ),
        (
            "    cache: { key: { files: [../Cargo.lock] }, paths: [a] }\n",
            "jobs[0].cache.key.files[0]",
        ),
        (
            "    cache: { key: { files: [Cargo.lock], prefix: \"x y\" }, paths: [a] }\n",
            "jobs[0].cache.key.prefix",
        ),
        (
            "    cache: { key: \"${{ nope }}\", paths: [a] }\n",
            "unsupported expression",
        ),
        (
            "    cache: { key: k, paths: [a], policy: sometimes }\n",
            "unknown variant",
        ),
        (
            "    cache: { key: k, paths: [a], size: 1 }\n",
            "unknown field",
        ),
    ] {
        let e = refused(extra);
        assert!(e.contains(says), "{extra}: {e}");
    }
}

#[test]
fn a_text_key_takes_inputs_and_is_checked_again_once_expanded() {
    let t = parse_template(&job(
        "    cache: { key: \"rust-${{ inputs.channel }}\", paths: [target] }\n",
    ))
    .expect("parses");
    let given = |v: &str| BTreeMap::from([("channel".to_owned(), v.to_owned())]);
    let inputs = resolve_inputs(&t, &BTreeMap::new(), &given("nightly")).expect("inputs");
    let j = expand_job(&t, &t.jobs[0], &inputs, &mut RunBudget::new()).expect("expands");
    assert_eq!(
        j.cache.expect("cache").key,
        CacheKey::Text("rust-nightly".into())
    );
    let inputs = resolve_inputs(&t, &BTreeMap::new(), &given("a/b")).expect("inputs");
    let e = expand_job(&t, &t.jobs[0], &inputs, &mut RunBudget::new()).expect_err("slash");
    assert!(matches!(e, ExpandError::InvalidCacheKey { .. }), "{e}");
}

#[test]
fn a_stored_spec_without_them_still_loads() {
    let t = parse_template(&job("")).expect("parses");
    let j = expand_job(&t, &t.jobs[0], &BTreeMap::new(), &mut RunBudget::new()).expect("x");
    let mut v = serde_json::to_value(&j).expect("json");
    assert!(v.get("artifacts").is_none() && v.get("cache").is_none());
    if let Some(o) = v.as_object_mut() {
        o.remove("artifacts");
    }
    let back: crate::expand::ExpandedJob = serde_json::from_value(v).expect("loads");
    assert_eq!(back.artifacts, None);
}

#[test]
fn a_files_key_changes_with_the_files_and_keeps_its_prefix() {
    use crate::template::files_key;
    let a = files_key(Some("cargo"), &[("Cargo.lock".into(), Some("aa".into()))]);
    let b = files_key(Some("cargo"), &[("Cargo.lock".into(), Some("bb".into()))]);
    let missing = files_key(Some("cargo"), &[("Cargo.lock".into(), None)]);
    assert!(
        a.starts_with("cargo-") && a.len() == "cargo-".len() + 16,
        "{a}"
    );
    assert_ne!(a, b);
    assert_ne!(a, missing);
    assert_eq!(
        a,
        files_key(Some("cargo"), &[("Cargo.lock".into(), Some("aa".into()))])
    );
    assert!(files_key(None, &[]).starts_with("default-"));
    assert_eq!(crate::template::check_cache_key(&a), Ok(()));
    let t = parse_template(&job(
        "    cache: { key: { files: [Cargo.lock] }, paths: [target] }\n",
    ))
    .expect("parses");
    let c = t.jobs[0].cache.clone().expect("cache");
    assert_eq!(c.key(), "default-default");
    assert_eq!(c.fallback_prefix(), Some("default"));
    let c = Cache {
        resolved: Some(a.clone()),
        ..c
    };
    assert_eq!(c.key(), a);
}
