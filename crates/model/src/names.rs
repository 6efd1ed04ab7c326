//! Validated names: repositories, templates, jobs, inputs and environment keys.
//!
//! Each newtype can only hold a value that matches its rule, so code that receives one
//! never re-checks it ("parse, don't validate"). The rules are checked by hand (no regex
//! crate); each is documented as the regular expression it implements, and that text is
//! what error messages show.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// A name that does not follow its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {shown}: must match {rule}", shown = quoted(.value))]
pub struct NameError {
    /// What was being parsed, e.g. `"repo name"`.
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// The rule, written as a regular expression.
    pub rule: &'static str,
}

/// Quotes `s` for an error message, cut short so a huge bad value cannot make a huge
/// message.
pub(crate) fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 100;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`
fn is_repo_like(s: &str) -> bool {
    let b = s.as_bytes();
    match b.split_first() {
        Some((&first, rest)) => {
            is_alnum(first)
                && rest.len() <= 99
                && rest
                    .iter()
                    .all(|&c| is_alnum(c) || matches!(c, b'.' | b'_' | b'-'))
        }
        None => false,
    }
}

/// `^[A-Za-z0-9_-]{1,64}$`
fn is_job_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|c| is_alnum(c) || matches!(c, b'_' | b'-'))
}

/// `^[A-Za-z_][A-Za-z0-9_-]{0,63}$`
fn is_input_name(s: &str) -> bool {
    let b = s.as_bytes();
    match b.split_first() {
        Some((&first, rest)) => {
            (first.is_ascii_alphabetic() || first == b'_')
                && rest.len() <= 63
                && rest
                    .iter()
                    .all(|&c| is_alnum(c) || matches!(c, b'_' | b'-'))
        }
        None => false,
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]{0,127}$`
fn is_env_key(s: &str) -> bool {
    let b = s.as_bytes();
    match b.split_first() {
        Some((&first, rest)) => {
            (first.is_ascii_alphabetic() || first == b'_')
                && rest.len() <= 127
                && rest.iter().all(|&c| is_alnum(c) || c == b'_')
        }
        None => false,
    }
}

/// Declares a validated string newtype with its parse rule, accessors and trait impls.
macro_rules! name_type {
    ($(#[$meta:meta])* $name:ident, kind = $kind:literal, rule = $rule:literal, check = $check:path) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The rule every value follows, as a regular expression.
            pub const RULE: &'static str = $rule;

            /// Parses `s`, failing with a message that shows the value and the rule.
            pub fn parse(s: &str) -> Result<Self, NameError> {
                if $check(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(NameError { kind: $kind, value: s.to_owned(), rule: $rule })
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Sound because the derived Eq/Ord/Hash compare exactly the inner string, so maps
        // keyed by the name can be looked up with a plain `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                if $check(&s) {
                    Ok(Self(s))
                } else {
                    Err(NameError { kind: $kind, value: s, rule: $rule })
                }
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A repository name: `^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`.
    RepoName, kind = "repo name", rule = "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", check = is_repo_like
);

name_type!(
    /// A stored template's name: `^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$` (the repo name rule).
    TemplateName, kind = "template name", rule = "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", check = is_repo_like
);

name_type!(
    /// A job's name, unique within its template: `^[A-Za-z0-9_-]{1,64}$`.
    JobName, kind = "job name", rule = "^[A-Za-z0-9_-]{1,64}$", check = is_job_name
);

name_type!(
    /// A template input's name, as used in `${{ inputs.NAME }}`: `^[A-Za-z_][A-Za-z0-9_-]{0,63}$`.
    InputName, kind = "input name", rule = "^[A-Za-z_][A-Za-z0-9_-]{0,63}$", check = is_input_name
);

name_type!(
    /// An environment variable name: `^[A-Za-z_][A-Za-z0-9_]{0,127}$`.
    EnvKey, kind = "env key", rule = "^[A-Za-z_][A-Za-z0-9_]{0,127}$", check = is_env_key
);

name_type!(
    /// A secret's name (SPEC §10): `^[A-Z_][A-Z0-9_]{0,127}$`.
    SecretName, kind = "secret name", rule = "^[A-Z_][A-Z0-9_]{0,127}$", check = is_secret_name
);

name_type!(
    /// A service's name (SPEC §12), also its host name in the job's network namespace: one
    /// RFC 1123 label in lower case, `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
    ServiceName, kind = "service name", rule = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", check = is_host_label
);

/// One RFC 1123 host name label, lower case: 1–63 letters, digits and `-`, neither first
/// nor last a `-`.
fn is_host_label(s: &str) -> bool {
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

#[cfg(test)]
mod service_name_tests {
    use super::ServiceName;
    use proptest::prelude::*;

    #[test]
    fn service_names_are_lower_case_host_labels() {
        for ok in ["db", "a", "0", "redis-1", "my-db-2", &"a".repeat(63)] {
            assert!(ServiceName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-db",
            "db-",
            "DB",
            "my_db",
            "my.db",
            "db ",
            "é",
            &"a".repeat(64),
        ] {
            assert!(ServiceName::parse(bad).is_err(), "{bad}");
        }
    }

    /// The rule written as a regular expression, checked by hand.
    fn reference(s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        match chars.as_slice() {
            [] => false,
            [one] => edge(*one),
            [first, mid @ .., last] => {
                chars.len() <= 63
                    && edge(*first)
                    && edge(*last)
                    && mid.iter().all(|c| edge(*c) || *c == '-')
            }
        }
    }

    proptest! {
        #[test]
        fn matches_the_rule(s in "[a-z0-9A-Z_.-]{0,70}") {
            prop_assert_eq!(ServiceName::parse(&s).is_ok(), reference(&s));
        }

        #[test]
        fn generated_from_the_rule_are_accepted(s in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?") {
            prop_assert!(ServiceName::parse(&s).is_ok());
        }

        #[test]
        fn arbitrary_strings_match_the_rule(s in any::<String>()) {
            prop_assert_eq!(ServiceName::parse(&s).is_ok(), reference(&s));
        }
    }
}

fn is_secret_name(s: &str) -> bool {
    let upper = |c: u8| c.is_ascii_uppercase() || c == b'_';
    match s.as_bytes().split_first() {
        Some((&first, rest)) => {
            upper(first)
                && rest.len() <= 127
                && rest.iter().all(|&c| upper(c) || c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod secret_name_tests {
    use super::SecretName;

    #[test]
    fn secret_names_are_upper_case_words() {
        for ok in ["A", "_", "DEPLOY_TOKEN", "NPM_TOKEN_2", &"A".repeat(128)] {
            assert!(SecretName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "deploy", "A-B", "A B", "Ä", &"A".repeat(129)] {
            assert!(SecretName::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn error_message_names_value_and_rule() {
        let err = RepoName::parse("a b").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid repo name "a b": must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"#
        );
        let err = EnvKey::parse("1X").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid env key "1X": must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$"#
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x y".repeat(1000);
        let msg = JobName::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 300, "{msg}");
        assert!(msg.contains('…'));
    }

    #[test]
    fn boundaries() {
        assert!(RepoName::parse("a").is_ok());
        assert!(RepoName::parse("my.repo_1-x").is_ok());
        assert!(RepoName::parse(&"a".repeat(100)).is_ok());
        assert!(RepoName::parse(&"a".repeat(101)).is_err());
        assert!(RepoName::parse("").is_err());
        assert!(RepoName::parse(".hidden").is_err());
        assert!(RepoName::parse("-x").is_err());
        assert!(RepoName::parse("a/b").is_err());
        assert!(TemplateName::parse("build.v2").is_ok());

        assert!(JobName::parse("-").is_ok());
        assert!(JobName::parse(&"j".repeat(64)).is_ok());
        assert!(JobName::parse(&"j".repeat(65)).is_err());
        assert!(JobName::parse("").is_err());
        assert!(JobName::parse("a.b").is_err());
        assert!(JobName::parse("é").is_err());

        assert!(InputName::parse("_x-1").is_ok());
        assert!(InputName::parse("1x").is_err());
        assert!(InputName::parse("-x").is_err());
        assert!(InputName::parse(&format!("a{}", "b".repeat(63))).is_ok());
        assert!(InputName::parse(&format!("a{}", "b".repeat(64))).is_err());

        assert!(EnvKey::parse("RUST_LOG").is_ok());
        assert!(EnvKey::parse("_").is_ok());
        assert!(EnvKey::parse("A-B").is_err());
        assert!(EnvKey::parse(&format!("A{}", "B".repeat(127))).is_ok());
        assert!(EnvKey::parse(&format!("A{}", "B".repeat(128))).is_err());
    }

    #[test]
    fn serde_is_a_plain_string_and_validates() {
        let n = JobName::parse("compile").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), r#""compile""#);
        assert_eq!(serde_json::from_str::<JobName>(r#""compile""#).unwrap(), n);
        let err = serde_json::from_str::<JobName>(r#""a b""#).unwrap_err();
        assert!(err.to_string().contains("invalid job name"), "{err}");
    }

    #[test]
    fn usable_as_str_map_key() {
        let mut m = std::collections::BTreeMap::new();
        m.insert(InputName::parse("profile").unwrap(), 1);
        assert_eq!(m.get("profile"), Some(&1));
        assert_eq!(InputName::parse("x").unwrap().as_ref(), "x");
        assert_eq!("x".parse::<InputName>().unwrap().to_string(), "x");
    }

    // Reference predicates written differently from the implementation (char-based,
    // position-indexed) so a shared mistake is unlikely.
    fn ref_repo(s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        !chars.is_empty()
            && chars.len() <= 100
            && chars
                .iter()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && ".-_".contains(*c)))
    }
    fn ref_job(s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        (1..=64).contains(&chars.len())
            && chars
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(*c))
    }
    fn ref_input(s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        (1..=64).contains(&chars.len())
            && chars.iter().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || (i > 0 && (c.is_ascii_digit() || *c == '-'))
            })
    }
    fn ref_env(s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        (1..=128).contains(&chars.len())
            && chars
                .iter()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || *c == '_' || (i > 0 && c.is_ascii_digit()))
    }

    fn check_all(s: &str) {
        assert_eq!(RepoName::parse(s).is_ok(), ref_repo(s), "repo {s:?}");
        assert_eq!(
            TemplateName::parse(s).is_ok(),
            ref_repo(s),
            "template {s:?}"
        );
        assert_eq!(JobName::parse(s).is_ok(), ref_job(s), "job {s:?}");
        assert_eq!(InputName::parse(s).is_ok(), ref_input(s), "input {s:?}");
        assert_eq!(EnvKey::parse(s).is_ok(), ref_env(s), "env {s:?}");
    }

    proptest! {
        #[test]
        fn generated_from_rule_are_accepted(
            repo in "[A-Za-z0-9][A-Za-z0-9._-]{0,99}",
            job in "[A-Za-z0-9_-]{1,64}",
            input in "[A-Za-z_][A-Za-z0-9_-]{0,63}",
            env in "[A-Za-z_][A-Za-z0-9_]{0,127}",
        ) {
            prop_assert!(RepoName::parse(&repo).is_ok());
            prop_assert!(TemplateName::parse(&repo).is_ok());
            prop_assert!(JobName::parse(&job).is_ok());
            prop_assert!(InputName::parse(&input).is_ok());
            prop_assert!(EnvKey::parse(&env).is_ok());
            check_all(&repo);
            check_all(&job);
            check_all(&input);
            check_all(&env);
        }

        #[test]
        fn near_misses_match_reference(s in "[A-Za-z0-9._ /é-]{0,130}") {
            check_all(&s);
        }

        #[test]
        fn arbitrary_strings_match_reference(s in any::<String>()) {
            check_all(&s);
        }

        #[test]
        fn parse_round_trips_through_display_and_serde(s in "[A-Za-z0-9_-]{1,64}") {
            let n = JobName::parse(&s).unwrap();
            prop_assert_eq!(n.to_string(), s.clone());
            let json = serde_json::to_string(&n).unwrap();
            prop_assert_eq!(serde_json::from_str::<JobName>(&json).unwrap(), n);
        }
    }
}
