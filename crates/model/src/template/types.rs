//! The validated template types: [`Template`], its [`JobTemplate`]s and [`InputSpec`]s.

use crate::duration::serde_secs;
use crate::expr::{Segment, segments};
use crate::names::{EnvKey, InputName, JobName, TemplateName};
use crate::resources::Resources;
use crate::template::{RetryPolicy, When};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A validated pipeline template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The `name:` written in the YAML; a stored template's own name wins over it.
    pub name: Option<TemplateName>,
    /// Declared inputs, usable as `${{ inputs.NAME }}`.
    pub inputs: BTreeMap<InputName, InputSpec>,
    /// Environment for every job (a job's own `env` wins).
    pub env: BTreeMap<EnvKey, String>,
    /// The jobs, in file order; never empty, names unique, `needs` acyclic.
    pub jobs: Vec<JobTemplate>,
}

/// A declared template input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Value used when neither the trigger nor the attachment gives one; YAML numbers and
    /// booleans are kept as written (`1.10` stays `"1.10"`).
    pub default: Option<String>,
    /// Whether a value must exist; a `default` satisfies it.
    pub required: bool,
    /// Free text for people.
    pub description: Option<String>,
}

/// A validated job of a template (before input expansion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTemplate {
    /// Unique within the template.
    pub name: JobName,
    /// Container image; required only when the runner's engine is docker.
    pub image: Option<String>,
    /// Shell lines, non-empty, run by `/bin/sh`, stopping at the first failure.
    pub script: Vec<String>,
    /// Job environment, overriding the template's.
    pub env: BTreeMap<EnvKey, String>,
    /// How long the job may run (stored as whole seconds).
    #[serde(with = "serde_secs")]
    pub timeout: Duration,
    /// Jobs of this template that must succeed first.
    pub needs: Vec<JobName>,
    /// Whether the job's failure neither stops nor fails the run.
    pub allow_failure: bool,
    /// When and how often a failed attempt is retried.
    pub retry: RetryPolicy,
    /// When the job runs.
    pub when: When,
    /// Memory and CPU limits it asks for (absent: the runner's defaults).
    #[serde(default)]
    pub resources: Resources,
    /// The secrets it is given, as environment variables (SPEC §10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::template::SecretRef>,
    /// Its `rules:` (repo pipeline files only, SPEC §9): empty, it always runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<crate::rules::Rule>,
    /// Runner labels it needs (SPEC §13); `engine: shell` lets it run without an image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runs_on: BTreeMap<String, String>,
    /// Containers started beside it, in its network namespace (SPEC §12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<crate::template::Service>,
    /// What it keeps after it ends (SPEC §11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<crate::template::Artifacts>,
    /// The tree it carries from run to run (SPEC §11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::template::Cache>,
}

impl JobTemplate {
    /// Whether the job asks for the shell engine (`runs_on: {engine: shell}`).
    pub fn on_shell(&self) -> bool {
        self.runs_on.get("engine").map(String::as_str) == Some("shell")
    }
}

impl Template {
    /// Whether any job has `needs`, i.e. the template is scheduled as a DAG rather than
    /// in file order.
    pub fn uses_dag(&self) -> bool {
        self.jobs.iter().any(|j| !j.needs.is_empty())
    }

    /// Whether the template declares an input named `input`.
    pub fn declares(&self, input: &str) -> bool {
        self.inputs.contains_key(input)
    }

    /// Jobs without an `image` that do not ask for the shell engine, so cannot run on
    /// the docker engine.
    pub fn missing_images(&self) -> Vec<&JobName> {
        self.jobs
            .iter()
            .filter(|j| j.image.is_none() && !j.on_shell())
            .map(|j| &j.name)
            .collect()
    }

    /// Every input referenced by `${{ inputs.NAME }}` in an image, script line or env
    /// value.
    pub fn referenced_inputs(&self) -> BTreeSet<InputName> {
        let mut out = BTreeSet::new();
        for text in self.expandable_texts() {
            for seg in segments(text).unwrap_or_default() {
                if let Segment::Input(name) = seg
                    && let Ok(n) = InputName::parse(name)
                {
                    out.insert(n);
                }
            }
        }
        out
    }

    /// All text in which inputs are expanded.
    fn expandable_texts(&self) -> impl Iterator<Item = &str> {
        self.env
            .values()
            .map(String::as_str)
            .chain(self.jobs.iter().flat_map(|j| {
                j.image
                    .iter()
                    .chain(&j.script)
                    .chain(j.env.values())
                    .map(String::as_str)
                    .chain(j.services.iter().flat_map(|s| s.expandable_texts()))
                    .chain(j.cache.iter().flat_map(|c| c.expandable_texts()))
            }))
    }
}
