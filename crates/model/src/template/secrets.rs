//! A job's `secrets:` (SPEC §10): the secrets it is given, as environment variables, either
//! `NAME` (the variable is called like the secret) or `{name: NAME, env: VAR}`. And the one
//! form that is refused everywhere: `${{ secrets.X }}`, because a value spliced into a script
//! line would be echoed by its `$ line` before any masking could know it.

use crate::expr::OPEN;
use crate::names::{EnvKey, SecretName, quoted};
use crate::template::parse::{Builder, invalid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One secret a job names, and the variable it is given as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// The secret (a repo secret of that name wins over a global one).
    pub name: SecretName,
    /// The environment variable the job sees it as.
    pub env: EnvKey,
}

/// `secrets:` items as written.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a secret name, or a mapping with keys name, env"
)]
pub(super) enum RawSecretRef {
    Name(String),
    Mapped(RawMapped),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMapped {
    name: String,
    env: Option<String>,
}

/// Where `${{ secrets.… }}` appears in `src`, as a 1-based line, if it does.
pub(super) fn secret_expression_line(src: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = src[from..].find(OPEN) {
        let start = from + at;
        let after = src[start + OPEN.len()..].trim_start();
        if after.starts_with("secrets.") {
            return Some(src[..start].matches('\n').count() + 1);
        }
        from = start + OPEN.len();
    }
    None
}

/// The refusal of `${{ secrets.X }}`.
pub(super) fn secret_expression_error(line: usize) -> String {
    format!(
        "${{{{ secrets.NAME }}}} is not supported (line {line}): a value spliced into a script would be echoed by its \"$ line\"; \
         list the secret in the job's secrets: (e.g. secrets: [NAME] or secrets: [{{name: NAME, env: VAR}}]) and read it from the environment ($NAME)"
    )
}

impl Builder {
    /// Checks a job's `secrets:` against the rules and its own `env` (a secret must not
    /// hide a variable the job sets).
    pub(super) fn secrets(
        &mut self,
        p: &str,
        raw: Option<Vec<RawSecretRef>>,
        job_env: &BTreeMap<EnvKey, String>,
    ) -> Vec<SecretRef> {
        let mut out: Vec<SecretRef> = Vec::new();
        for (j, item) in raw.unwrap_or_default().into_iter().enumerate() {
            let at = format!("{p}.secrets[{j}]");
            let (name, env) = match item {
                RawSecretRef::Name(n) => (n.clone(), n),
                RawSecretRef::Mapped(RawMapped { name, env }) => {
                    let env = env.unwrap_or_else(|| name.clone());
                    (name, env)
                }
            };
            let name = match SecretName::parse(&name) {
                Ok(n) => n,
                Err(e) => {
                    self.err(invalid(&format!("{at}.name"), &e));
                    continue;
                }
            };
            let env = match EnvKey::parse(&env) {
                Ok(v) => v,
                Err(e) => {
                    self.err(invalid(&format!("{at}.env"), &e));
                    continue;
                }
            };
            if out.iter().any(|s| s.env == env) {
                self.err(format!(
                    "{at}: environment variable {} is given more than one secret",
                    quoted(env.as_str())
                ));
                continue;
            }
            if job_env.contains_key(env.as_str()) {
                self.err(format!(
                    "{at}: environment variable {} is also set in {p}.env; give the secret another env",
                    quoted(env.as_str())
                ));
                continue;
            }
            out.push(SecretRef { name, env });
        }
        out
    }
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
