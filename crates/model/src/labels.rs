//! Runner labels and a job's `runs_on` (SPEC §13).
//!
//! A runner carries `RUNNER_LABELS` (`gpu=true,zone=a`) plus four implicit labels it cannot
//! set itself: `engine` (`docker` or `shell`), `os`, `arch` and `runner` (its name). A job's
//! `runs_on` is a map of pairs that must all match. Its **requirements** are `runs_on` with
//! `engine=docker` added when `runs_on` names no engine, so a shell runner takes only jobs
//! that ask for `engine: shell`. pipeline-svc stores the requirements next to the job and
//! matches them in the claim statement (`requires <@ labels`); [`unmet`] says in words
//! which pairs a runner lacks.

use std::collections::BTreeMap;

/// Labels every runner has, set by GitWeave and never by `RUNNER_LABELS`.
pub const IMPLICIT: [&str; 4] = ["engine", "os", "arch", "runner"];

/// The most labels a runner may set, and the most pairs a job's `runs_on` may hold.
pub const MAX_LABELS: usize = 32;

/// The longest label key.
pub const MAX_KEY: usize = 63;

/// The longest label value.
pub const MAX_VALUE: usize = 128;

/// The engines a job may ask for.
pub const ENGINES: [&str; 2] = ["docker", "shell"];

/// A set of labels, or a job's requirements: key → value.
pub type Labels = BTreeMap<String, String>;

/// Checks a label key: 1–63 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_key(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && k.len() <= MAX_KEY
        && k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label key {k:?} must be 1 to {MAX_KEY} characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// Checks a label value: 1–128 of `A-Z a-z 0-9 . _ - : /`.
pub fn check_value(k: &str, v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= MAX_VALUE
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the value of label {k} ({v:?}) must be 1 to {MAX_VALUE} characters of A-Z, a-z, 0-9, '.', '_', '-', ':' or '/'"
        ))
    }
}

/// Parses `RUNNER_LABELS`: `key=value` pairs separated by commas (spaces around them are
/// ignored; empty means none). A key given twice, an implicit key, or a bad key or value is
/// an error naming it.
pub fn parse_runner_labels(s: &str) -> Result<Labels, String> {
    let mut out = Labels::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!(
                "RUNNER_LABELS item {item:?} is not key=value (e.g. RUNNER_LABELS=gpu=true,zone=a)"
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        check_user_label(k, v)?;
        if out.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(format!("RUNNER_LABELS sets {k} more than once"));
        }
        if out.len() > MAX_LABELS {
            return Err(format!("RUNNER_LABELS holds more than {MAX_LABELS} labels"));
        }
    }
    Ok(out)
}

/// Checks one label a runner sets itself (not an implicit one).
pub fn check_user_label(k: &str, v: &str) -> Result<(), String> {
    check_key(k)?;
    check_value(k, v)?;
    if IMPLICIT.contains(&k) {
        return Err(format!(
            "label {k} is set by GitWeave itself (the implicit labels are {}); choose another key",
            IMPLICIT.join(", ")
        ));
    }
    Ok(())
}

/// What the runner registers, implicit labels included.
#[derive(Debug, Clone, Copy)]
pub struct RunnerIdentity<'a> {
    /// `docker` or `shell`.
    pub engine: &'a str,
    /// `std::env::consts::OS` of the runner.
    pub os: &'a str,
    /// `std::env::consts::ARCH` of the runner.
    pub arch: &'a str,
    /// `RUNNER_NAME`.
    pub name: &'a str,
}

/// A runner's whole label set: its own labels and the four implicit ones.
pub fn runner_labels(own: &Labels, id: RunnerIdentity<'_>) -> Labels {
    let mut all = own.clone();
    for (k, v) in [
        ("engine", id.engine),
        ("os", id.os),
        ("arch", id.arch),
        ("runner", id.name),
    ] {
        all.insert(k.to_owned(), v.to_owned());
    }
    all
}

/// A job's requirements: its `runs_on`, with `engine=docker` when it names no engine.
pub fn requirements(runs_on: &Labels) -> Labels {
    let mut req = runs_on.clone();
    req.entry("engine".to_owned())
        .or_insert_with(|| "docker".to_owned());
    req
}

/// Whether a runner with `labels` may take a job with requirements `req`.
pub fn satisfies(labels: &Labels, req: &Labels) -> bool {
    req.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pairs of `req` that `labels` lacks, as `key=value`.
pub fn unmet(labels: &Labels, req: &Labels) -> Vec<String> {
    req.iter()
        .filter(|(k, v)| labels.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn runner_labels_parse_and_refuse_what_they_must() {
        assert_eq!(
            parse_runner_labels(" gpu=true , zone=a,").unwrap(),
            labels(&[("gpu", "true"), ("zone", "a")])
        );
        assert_eq!(parse_runner_labels("").unwrap(), Labels::new());
        for (bad, says) in [
            ("gpu", "not key=value"),
            ("engine=docker", "set by GitWeave"),
            ("runner=x", "set by GitWeave"),
            ("a=1,a=2", "more than once"),
            ("Gpu=true", "label key"),
            ("gpu=", "value of label gpu"),
            ("gpu=a b", "value of label gpu"),
        ] {
            let e = parse_runner_labels(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_job_needs_docker_unless_it_names_an_engine() {
        let docker = runner_labels(
            &labels(&[("zone", "a")]),
            RunnerIdentity {
                engine: "docker",
                os: "linux",
                arch: "x86_64",
                name: "r1",
            },
        );
        let shell = runner_labels(
            &Labels::new(),
            RunnerIdentity {
                engine: "shell",
                os: "linux",
                arch: "x86_64",
                name: "r2",
            },
        );
        let plain = requirements(&Labels::new());
        assert!(satisfies(&docker, &plain));
        assert!(
            !satisfies(&shell, &plain),
            "a shell runner takes only engine: shell"
        );
        let on_shell = requirements(&labels(&[("engine", "shell")]));
        assert!(satisfies(&shell, &on_shell) && !satisfies(&docker, &on_shell));
        let zone_b = requirements(&labels(&[("zone", "b")]));
        assert_eq!(unmet(&docker, &zone_b), vec!["zone=b".to_owned()]);
        assert!(satisfies(
            &docker,
            &requirements(&labels(&[("runner", "r1"), ("zone", "a")]))
        ));
    }

    proptest! {
        /// `satisfies` is what the claim's `requires <@ labels` computes: every required pair
        /// is in the label set; and `unmet` is empty exactly then.
        #[test]
        fn satisfies_is_containment_and_unmet_names_the_difference(
            have in proptest::collection::btree_map("[a-c]", "[x-z]", 0..4),
            want in proptest::collection::btree_map("[a-c]", "[x-z]", 0..4),
        ) {
            let contained = want.iter().all(|(k, v)| have.get(k) == Some(v));
            prop_assert_eq!(satisfies(&have, &want), contained);
            prop_assert_eq!(unmet(&have, &want).is_empty(), contained);
        }

        /// A runner's own labels never change an implicit one.
        #[test]
        fn implicit_labels_win(key in proptest::sample::select(IMPLICIT.to_vec()), v in "[a-z]{1,8}") {
            let own = labels(&[(key, v.as_str())]);
            let all = runner_labels(&own, RunnerIdentity { engine: "docker", os: "linux", arch: "x86_64", name: "n" });
            let expected = match key { "engine" => "docker", "os" => "linux", "arch" => "x86_64", _ => "n" };
            prop_assert_eq!(all.get(key).map(String::as_str), Some(expected));
        }
    }
}
