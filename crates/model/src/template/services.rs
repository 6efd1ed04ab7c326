//! A job's `services:` (SPEC §12): containers started beside the job, in its network
//! namespace, before its script, each reachable as its `name` and on `localhost`.
//!
//! Checked at upload: at most [`MAX_SERVICES`] per job, names that are host names
//! ([`ServiceName`], an RFC 1123 label) unique within the job and unlike the job's own name
//! (compared without case, as host names are), an image, an optional `command` (it replaces
//! the image's `CMD`), and an optional `ready` check, a TCP port or a command, each with a
//! timeout.

use crate::duration::{parse_duration, serde_secs};
use crate::names::{EnvKey, ServiceName, quoted};
use crate::template::parse::{Builder, invalid};
use crate::template::raw::{Scalar, UniqueMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The most services one job may have.
pub const MAX_SERVICES: usize = 10;
/// The most words a service's `command` may hold.
pub const MAX_COMMAND_WORDS: usize = 256;
/// The longest `ready: {command}` accepted, in bytes.
pub const MAX_READY_COMMAND_BYTES: usize = 4096;
/// How long a service may take to become ready when its `ready` says no `timeout`.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest `ready.timeout` accepted.
pub const MAX_READY_TIMEOUT: Duration = Duration::from_secs(3600);

/// A service of a job: validated, and after expansion the very thing the runner starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Its host name in the job's namespace, unique within the job.
    pub name: ServiceName,
    /// Its image (follows the runner's pull policy, as a job's).
    pub image: String,
    /// Its environment (only this: the job's variables and secrets are not given to it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Replaces the image's `CMD` (the entrypoint stays); `None` keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// When the service counts as ready; `None`: once its container runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
}

/// A readiness check and how long it may take to pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// What is checked.
    #[serde(flatten)]
    pub check: ReadyCheck,
    /// How long, from the service's start, before the job fails with `service_failed`.
    #[serde(with = "serde_secs")]
    pub timeout: Duration,
}

/// What makes a service ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyCheck {
    /// Something listens on this TCP port in the job's namespace.
    Tcp(u16),
    /// This `/bin/sh` command exits 0 when run in the service's container.
    Command(String),
}

impl Service {
    /// The text in which `${{ inputs.NAME }}` is expanded: image, env values, command words
    /// and a ready command.
    pub(crate) fn expandable_texts(&self) -> impl Iterator<Item = &str> {
        let ready = match &self.ready {
            Some(Ready {
                check: ReadyCheck::Command(c),
                ..
            }) => Some(c.as_str()),
            _ => None,
        };
        std::iter::once(self.image.as_str())
            .chain(self.env.values().map(String::as_str))
            .chain(self.command.iter().flatten().map(String::as_str))
            .chain(ready)
    }
}

/// `services:` items as written.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a service mapping with keys name, image, env, command, ready"
)]
pub(super) struct RawService {
    name: Option<String>,
    image: Option<String>,
    env: Option<UniqueMap<Scalar>>,
    command: Option<Vec<Scalar>>,
    ready: Option<RawReady>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a ready mapping with keys tcp, command, timeout"
)]
pub(super) struct RawReady {
    tcp: Option<Scalar>,
    command: Option<String>,
    timeout: Option<String>,
}

impl Builder {
    /// Checks a job's `services:`; `job` is the job's own name when it is valid.
    pub(super) fn services(
        &mut self,
        p: &str,
        raw: Option<Vec<RawService>>,
        job: Option<&str>,
    ) -> Vec<Service> {
        let raw = raw.unwrap_or_default();
        if raw.len() > MAX_SERVICES {
            self.err(format!(
                "{p}.services has {} services, more than the maximum of {MAX_SERVICES}",
                raw.len()
            ));
            return Vec::new();
        }
        let mut out: Vec<Service> = Vec::new();
        for (i, s) in raw.into_iter().enumerate() {
            let at = format!("{p}.services[{i}]");
            if let Some(service) = self.service(&at, s) {
                if out.iter().any(|o| o.name == service.name) {
                    self.err(format!(
                        "{at}.name {} is used by another service of this job; service names are host names and must be unique",
                        quoted(service.name.as_str())
                    ));
                    continue;
                }
                if job.is_some_and(|j| j.eq_ignore_ascii_case(service.name.as_str())) {
                    self.err(format!(
                        "{at}.name {} is the job's own name; give the service another name",
                        quoted(service.name.as_str())
                    ));
                    continue;
                }
                out.push(service);
            }
        }
        out
    }

    fn service(&mut self, at: &str, raw: RawService) -> Option<Service> {
        let before = self.errors.len();
        let name = match raw.name {
            None => {
                self.err(format!("{at}.name is required"));
                None
            }
            Some(n) if n == "localhost" => {
                self.err(format!(
                    "{at}.name \"localhost\" is reserved: every service is reachable on localhost already"
                ));
                None
            }
            Some(n) => ServiceName::parse(&n)
                .map_err(|e| self.err(invalid(&format!("{at}.name"), &e)))
                .ok(),
        };
        match &raw.image {
            None => self.err(format!("{at}.image is required")),
            Some(image) => self.image(at, image),
        }
        let env = self.env(&format!("{at}.env"), raw.env);
        let command = raw.command.map(|words| {
            if words.len() > MAX_COMMAND_WORDS {
                self.err(format!(
                    "{at}.command has {} words, more than the maximum of {MAX_COMMAND_WORDS}",
                    words.len()
                ));
            }
            words.into_iter().map(|Scalar(w)| w).collect::<Vec<_>>()
        });
        let ready = raw.ready.and_then(|r| self.ready(at, r));
        let name = name?;
        let image = raw.image?;
        (self.errors.len() == before).then(|| Service {
            name,
            image,
            env: env
                .into_iter()
                .map(|(k, v): (EnvKey, String)| (k.as_str().to_owned(), v))
                .collect(),
            command,
            ready,
        })
    }

    fn ready(&mut self, at: &str, raw: RawReady) -> Option<Ready> {
        let timeout = match raw.timeout {
            None => DEFAULT_READY_TIMEOUT,
            Some(t) => match parse_duration(&t) {
                Ok(d) if d <= MAX_READY_TIMEOUT => d,
                Ok(_) => {
                    self.err(format!(
                        "{at}.ready.timeout {} is longer than the maximum of 1h",
                        quoted(&t)
                    ));
                    return None;
                }
                Err(e) => {
                    self.err(format!("{at}.ready.timeout: {e}"));
                    return None;
                }
            },
        };
        let check = match (raw.tcp, raw.command) {
            (Some(Scalar(port)), None) => match port.parse::<u16>() {
                Ok(p) if p > 0 => ReadyCheck::Tcp(p),
                _ => {
                    self.err(format!(
                        "{at}.ready.tcp {} is not a TCP port (1 to 65535)",
                        quoted(&port)
                    ));
                    return None;
                }
            },
            (None, Some(command)) if command.trim().is_empty() => {
                self.err(format!("{at}.ready.command must not be empty"));
                return None;
            }
            (None, Some(command)) if command.len() > MAX_READY_COMMAND_BYTES => {
                self.err(format!(
                    "{at}.ready.command is {} bytes, more than the maximum of {MAX_READY_COMMAND_BYTES}",
                    command.len()
                ));
                return None;
            }
            (None, Some(command)) => ReadyCheck::Command(command),
            (Some(_), Some(_)) => {
                self.err(format!(
                    "{at}.ready has both tcp and command; give one of them"
                ));
                return None;
            }
            (None, None) => {
                self.err(format!(
                    "{at}.ready needs tcp (a port) or command (run in the service's container)"
                ));
                return None;
            }
        };
        Some(Ready { check, timeout })
    }
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
