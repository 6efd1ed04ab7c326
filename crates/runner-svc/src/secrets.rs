//! Keeping the runner's secrets out of its process environment.
//!
//! A process's initial environment stays readable in `/proc/<pid>/environ` for its whole life,
//! by every process of the same user: a shell-engine job (a host process of the runner's
//! user) could read `RUNNER_REGISTRATION_TOKEN` from `/proc/$PPID/environ`. Removing a variable
//! in-process does not change that file (and is `unsafe` in edition 2024). So [`scrub`], the
//! very first thing `main` does, re-executes the binary (`/proc/self/exe`, same arguments)
//! with every secret-looking variable ([`is_secret`]) removed from its environment; the values
//! the runner itself uses ([`USED`]) travel through a pipe on the new process's stdin, which
//! it reads to the end before anything else. The new process's `/proc/<pid>/environ` holds no
//! secret; the others (`GITWEAVE_API_TOKEN`, `DATABASE_URL`, …, which a runner never needs)
//! are dropped. The per-runner token from registration lives in memory only, and
//! [`protect`] makes that memory unreadable to the runner's user: the process is not dumpable,
//! so no process of that user (a shell job) can ptrace it or read its `/proc/<pid>/mem` or
//! `environ` (jobs it starts are dumpable again: exec resets the flag).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Set (to `1`) on the re-executed process: its stdin carries the handed-over values.
pub const HANDOFF_VAR: &str = "GITWEAVE_RUNNER_SECRETS_ON_STDIN";

/// The secrets runner-svc reads itself, handed to the re-executed process.
pub const USED: &[&str] = &["RUNNER_REGISTRATION_TOKEN"];

/// The pipe is written before the exec, with nobody reading yet: stay under its capacity.
const MAX_HANDOFF: usize = 32 * 1024;

/// Why the secrets could not be moved out of the environment.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The re-exec (or the pipe around it) failed.
    #[error("could not restart runner-svc without its secrets in the environment: {0}")]
    Io(#[from] std::io::Error),
    /// The values do not fit the pipe.
    #[error("the secrets handed over are larger than {MAX_HANDOFF} bytes")]
    TooLarge,
    /// A secret the runner uses is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(String),
    /// The handed-over values are not what [`encode`] writes.
    #[error(
        "the secrets handed over on stdin are malformed ({HANDOFF_VAR} is set by runner-svc itself, with stdin a pipe)"
    )]
    Malformed,
}

/// Whether an environment variable holds a secret: the known ones, and anything named
/// `*_TOKEN`, `*_SECRET`, `*_KEY`, `*_PASSWORD`.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    matches!(
        n.as_str(),
        "RUNNER_REGISTRATION_TOKEN" | "GITWEAVE_API_TOKEN" | "DATABASE_URL"
    ) || ["_TOKEN", "_SECRET", "_KEY", "_PASSWORD"]
        .iter()
        .any(|s| n.ends_with(s))
}

/// The values handed over to this process.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handed(BTreeMap<String, String>);

impl Handed {
    /// A handed-over value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Fills the settings that come from secrets, unless a flag gave them.
    pub fn apply(&self, config: &mut crate::Config) {
        if config.registration_token.is_none() {
            config.registration_token = self.get("RUNNER_REGISTRATION_TOKEN").map(str::to_owned);
        }
    }
}

/// `NAME=VALUE\0` for each entry (an environment variable holds no NUL).
pub fn encode(h: &Handed) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in &h.0 {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The inverse of [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Handed, SecretsError> {
    let mut map = BTreeMap::new();
    if bytes.is_empty() {
        return Ok(Handed(map));
    }
    let body = bytes.strip_suffix(&[0]).ok_or(SecretsError::Malformed)?;
    for entry in body.split(|b| *b == 0) {
        let text = std::str::from_utf8(entry).map_err(|_| SecretsError::Malformed)?;
        let (k, v) = text.split_once('=').ok_or(SecretsError::Malformed)?;
        if k.is_empty() {
            return Err(SecretsError::Malformed);
        }
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok(Handed(map))
}

/// Returns the handed-over secrets when the environment holds none; otherwise re-executes
/// this binary without them (and does not return, unless that fails). Call it first in
/// `main`, before any thread starts.
pub fn scrub() -> Result<Handed, SecretsError> {
    let mut handed = if std::env::var_os(HANDOFF_VAR).is_some() {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err(SecretsError::Malformed);
        }
        let mut buf = Vec::new();
        stdin
            .lock()
            .take(MAX_HANDOFF as u64 + 1)
            .read_to_end(&mut buf)?;
        decode(&buf)?
    } else {
        Handed::default()
    };
    let present: Vec<(String, OsString)> = std::env::vars_os()
        .filter_map(|(k, v)| {
            k.to_str()
                .filter(|k| is_secret(k))
                .map(|k| (k.to_owned(), v))
        })
        .collect();
    if present.is_empty() {
        return Ok(handed);
    }
    for (k, v) in &present {
        if USED.contains(&k.as_str()) {
            let v = v.to_str().ok_or_else(|| SecretsError::NotUtf8(k.clone()))?;
            handed.0.insert(k.clone(), v.to_owned());
        }
    }
    let payload = encode(&handed);
    if payload.len() > MAX_HANDOFF {
        return Err(SecretsError::TooLarge);
    }
    let (reader, mut writer) = std::io::pipe()?;
    writer.write_all(&payload)?;
    drop(writer);
    let mut cmd = Command::new("/proc/self/exe");
    let mut args = std::env::args_os();
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args)
        .stdin(Stdio::from(reader))
        .env(HANDOFF_VAR, "1");
    for (k, _) in &present {
        cmd.env_remove(k);
    }
    Err(SecretsError::Io(cmd.exec()))
}

/// Makes this process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): its `/proc/<pid>` entries
/// then belong to root, and processes of the same user cannot ptrace it. Call it after
/// [`scrub`], in the process that keeps running.
pub fn protect() -> Result<(), SecretsError> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| SecretsError::Io(e.into()))
}

#[cfg(test)]
mod tests {
    use super::{Handed, decode, encode, is_secret};
    use proptest::prelude::*;

    #[test]
    fn secret_names_are_recognised() {
        for n in [
            "RUNNER_REGISTRATION_TOKEN",
            "GITWEAVE_API_TOKEN",
            "DATABASE_URL",
            "GITWEAVE_SECRETS_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_TOKEN",
            "WEBHOOK_SECRET",
            "PGPASSWORD_PASSWORD",
            "my_token",
        ] {
            assert!(is_secret(n), "{n}");
        }
        for n in [
            "PATH",
            "HOME",
            "RUNNER_NAME",
            "PIPELINE_SVC_URL",
            "TOKENS",
            "KEYBOARD",
        ] {
            assert!(!is_secret(n), "{n}");
        }
    }

    #[test]
    fn malformed_handoffs_are_refused() {
        for bad in [&b"X=1"[..], b"=1\0", b"novalue\0", b"\xff=1\0"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decode(b"").ok(), Some(Handed::default()));
    }

    proptest! {
        #[test]
        fn what_is_encoded_decodes_the_same(
            entries in proptest::collection::btree_map("[A-Z_]{1,20}", "[^\u{0}]{0,40}", 0..6)
        ) {
            let h = Handed(entries);
            prop_assert_eq!(decode(&encode(&h)).ok(), Some(h));
        }
    }
}
