//! Pipeline templates: YAML parsed once into validated types ("parse, don't validate").
//!
//! [`parse_template`] is the only place template YAML is read. It deserializes into
//! private, loosely typed `Raw*` structs (so shape errors come from the YAML library with a
//! line and column, and unknown keys are rejected), then checks every rule and builds the
//! public [`Template`]. Validation errors are collected and reported together, joined with
//! `"; "`, each naming where it is (`jobs[2].name …`).
//!
//! The public types also derive serde so a parsed template can be stored as JSON; reading
//! that JSON back does not re-run the checks, so it must only ever come from
//! [`parse_template`]'s output.

use crate::duration::{DEFAULT_JOB_TIMEOUT, parse_duration, serde_secs};
use crate::expand::{Segment, segments};
use crate::limits::{self, LimitExceeded};
use crate::names::{EnvKey, InputName, JobName, NameError, TemplateName, quoted};
use crate::resources::Resources;
use crate::status::ErrorClass;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

/// The largest template accepted, checked before any parsing.
pub const MAX_TEMPLATE_BYTES: usize = 512 * 1024;

/// The most jobs one template may hold.
pub const MAX_JOBS: usize = 500;

/// The largest `retry` count.
pub const MAX_RETRIES: u32 = 10;

/// How many validation problems one error message lists before summarizing the rest.
const MAX_REPORTED: usize = 20;

/// A template that could not be parsed or is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", location(*.line, *.column))]
pub struct TemplateError {
    /// What is wrong, naming where (e.g. `jobs[1].script must not be empty`).
    pub message: String,
    /// 1-based line, for YAML syntax and type errors.
    pub line: Option<usize>,
    /// 1-based column, for YAML syntax and type errors.
    pub column: Option<usize>,
    /// Set when the template was refused for a size cap ([`crate::limits`]) rather than
    /// for its content.
    pub limit: Option<LimitExceeded>,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l} column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

impl TemplateError {
    fn new(message: String) -> Self {
        TemplateError {
            message,
            line: None,
            column: None,
            limit: None,
        }
    }

    fn from_yaml(err: &yaml_serde::Error) -> Self {
        let loc = err.location();
        let mut message = err.to_string();
        // The library appends the location to its message; it is kept in the fields
        // instead so it is not shown twice.
        if let Some(l) = &loc {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(at) = message.find(&suffix) {
                message.replace_range(at..at + suffix.len(), "");
            }
        }
        // libyaml appends its context ("…, while parsing a block mapping at line 2 column
        // 1"); bracketing it keeps the location shown last unambiguous.
        if let Some(at) = message.find(", while ") {
            message = format!("{} ({})", &message[..at], &message[at + 2..]);
        }
        // serde quotes names with backticks; the rest of our messages use double quotes.
        let message = message.replace('`', "\"");
        TemplateError {
            message,
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            limit: None,
        }
    }
}

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
}

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// After everything before it succeeded (the default).
    #[default]
    OnSuccess,
    /// Only once a person approves it.
    Manual,
    /// Even if something before it failed.
    Always,
}

impl When {
    /// Every variant, for parsing and tests.
    pub const ALL: [When; 3] = [When::OnSuccess, When::Manual, When::Always];

    /// The wire and storage name (`on_success`, `manual`, `always`).
    pub fn as_str(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::Manual => "manual",
            When::Always => "always",
        }
    }
}

impl std::str::FromStr for When {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        When::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| format!("unknown `when` {s:?} (expected on_success, manual or always)"))
    }
}

/// When and how often a failed job attempt is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt, at most [`MAX_RETRIES`]; 0 means never.
    pub max: u32,
    /// Failure classes that are retried; never `canceled` or `config_error`.
    pub when: Vec<ErrorClass>,
    /// If non-empty, `exit_code` failures are retried only for these codes.
    pub exit_codes: Vec<i64>,
}

impl RetryPolicy {
    /// Every class a retry may name, and what `retry: N` retries.
    pub const RETRYABLE: &'static [ErrorClass] = &[
        ErrorClass::RunnerFailure,
        ErrorClass::Timeout,
        ErrorClass::ExitCode,
        ErrorClass::OomKilled,
        ErrorClass::ImageNotFound,
    ];

    /// `retry: max`: retry any retryable failure up to `max` times.
    pub fn count(max: u32) -> Self {
        RetryPolicy {
            max,
            when: Self::RETRYABLE.to_vec(),
            exit_codes: Vec::new(),
        }
    }

    /// Whether attempt number `attempt` (1-based, the one that just failed with `class`
    /// and, for `exit_code`, `exit_code`) may be followed by another attempt.
    pub fn allows(&self, class: ErrorClass, exit_code: Option<i64>, attempt: u32) -> bool {
        attempt <= self.max
            && self.when.contains(&class)
            && (class != ErrorClass::ExitCode
                || self.exit_codes.is_empty()
                || exit_code.is_some_and(|c| self.exit_codes.contains(&c)))
    }
}

impl Default for RetryPolicy {
    /// No retries (the same as `retry: 0`).
    fn default() -> Self {
        Self::count(0)
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

    /// Jobs without an `image`, which cannot run on the docker engine.
    pub fn missing_images(&self) -> Vec<&JobName> {
        self.jobs
            .iter()
            .filter(|j| j.image.is_none())
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
            }))
    }
}

// ---------------------------------------------------------------------------------------
// Raw YAML shapes. Loose where the checks below give a better message than a type error,
// strict (`deny_unknown_fields`) everywhere so typos in keys are reported.

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a template mapping with keys name, inputs, env, jobs"
)]
struct RawTemplate {
    name: Option<String>,
    inputs: Option<UniqueMap<Option<RawInput>>>,
    env: Option<UniqueMap<Scalar>>,
    jobs: Option<Vec<RawJob>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an input mapping with keys default, required, description"
)]
struct RawInput {
    default: Option<String>,
    required: Option<bool>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a job mapping with keys name, image, script, env, timeout, needs, allow_failure, retry, when, resources"
)]
struct RawJob {
    name: Option<String>,
    image: Option<String>,
    script: Option<Vec<Scalar>>,
    env: Option<UniqueMap<Scalar>>,
    // Text of the scalar as written, so `600` and `10m` go through the same parser.
    timeout: Option<String>,
    needs: Option<Vec<String>>,
    allow_failure: Option<bool>,
    retry: Option<RawRetry>,
    when: Option<When>,
    resources: Option<RawResources>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a resources mapping with keys memory, cpus"
)]
struct RawResources {
    memory: Option<Scalar>,
    cpus: Option<Scalar>,
}

enum RawRetry {
    Count(i128),
    Map(RawRetryMap),
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a retry mapping with keys max, when, exit_codes"
)]
struct RawRetryMap {
    max: i64,
    when: Option<Vec<String>>,
    exit_codes: Option<Vec<i64>>,
}

impl<'de> Deserialize<'de> for RawRetry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRetry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a retry count or a mapping with keys max, when, exit_codes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawRetry, E> {
                Ok(RawRetry::Count(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawRetry, E> {
                Ok(RawRetry::Count(v.into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawRetry, A::Error> {
                RawRetryMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawRetry::Map)
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar (string, number or boolean) kept as the text written in the YAML; null,
/// sequences and mappings are type errors.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Err(E::invalid_type(de::Unexpected::Other("null"), &self))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                self.visit_none()
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                // Asking for a string makes the YAML library hand over the scalar's text
                // as written, so `1.10` stays "1.10" rather than becoming the float 1.1.
                String::deserialize(d).map(Scalar)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
        }
        // Through `option` first: it is the only way to tell a YAML null from the string
        // "null", since asking for a string directly yields the text of either.
        d.deserialize_option(V)
    }
}

/// A mapping with string keys that rejects duplicate keys (a plain map would silently keep
/// the last one), in file order.
struct UniqueMap<V>(Vec<(String, V)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for UniqueMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = UniqueMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap<T>, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {}", quoted(&key))));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(UniqueMap(entries))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

// ---------------------------------------------------------------------------------------

/// Parses and validates a template.
///
/// Checks, in order: the size cap ([`MAX_TEMPLATE_BYTES`]); YAML syntax and shapes (with
/// line and column), while counting nodes and scalar bytes as aliases are expanded
/// ([`limits::yaml_node_cap`], [`limits::yaml_scalar_cap`]); then every rule of the template format, reporting all problems found
/// joined with `"; "` (the first 20 of them). Cross-job rules (`needs`
/// targets, cycles) and input references are checked once the jobs themselves are valid.
pub fn parse_template(src: &str) -> Result<Template, TemplateError> {
    if src.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::new(format!(
            "template is {} bytes, more than the maximum of {MAX_TEMPLATE_BYTES} bytes",
            src.len()
        )));
    }
    // Aliases are followed lazily by the YAML library: counting what each visitor is handed
    // bounds their expansion before it is copied anywhere.
    let budget = crate::yaml_budget::Budget::new(
        limits::yaml_node_cap(src.len()),
        limits::yaml_scalar_cap(src.len()),
    );
    let de = crate::yaml_budget::Counted::new(yaml_serde::Deserializer::from_str(src), &budget);
    let raw = RawTemplate::deserialize(de).map_err(|e| {
        let mut err = TemplateError::from_yaml(&e);
        err.limit = budget.exceeded();
        err
    })?;
    let mut b = Builder::default();
    let template = b.template(raw);
    match (template, b.errors.is_empty()) {
        (Some(t), true) => Ok(t),
        _ => {
            let mut err = TemplateError::new(b.message());
            err.limit = b.limit.take();
            Err(err)
        }
    }
}

#[derive(Default)]
struct Builder {
    errors: Vec<String>,
    /// The first size cap reported, if any.
    limit: Option<LimitExceeded>,
}

fn invalid(path: &str, e: &NameError) -> String {
    format!(
        "{path} {} is invalid: must match {}",
        quoted(&e.value),
        e.rule
    )
}

impl Builder {
    fn err(&mut self, msg: String) {
        self.errors.push(msg);
    }

    fn over(&mut self, path: &str, e: LimitExceeded) {
        self.err(format!("{path}: {e}"));
        self.limit.get_or_insert(e);
    }

    fn message(&self) -> String {
        if self.errors.is_empty() {
            // Unreachable by construction (nothing is dropped without a report), but an
            // error must never be blank.
            return "template is invalid".to_owned();
        }
        let mut msg = self
            .errors
            .iter()
            .take(MAX_REPORTED)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if self.errors.len() > MAX_REPORTED {
            msg.push_str(&format!(
                "; and {} more problems",
                self.errors.len() - MAX_REPORTED
            ));
        }
        msg
    }

    /// Builds the template, or `None` when something was reported.
    fn template(&mut self, raw: RawTemplate) -> Option<Template> {
        let name = raw.name.and_then(|n| {
            TemplateName::parse(&n)
                .map_err(|e| self.err(invalid("name", &e)))
                .ok()
        });

        let mut inputs = BTreeMap::new();
        let raw_inputs = raw.inputs.map(|m| m.0).unwrap_or_default();
        if raw_inputs.len() > limits::MAX_INPUTS {
            self.over(
                "inputs",
                LimitExceeded::new(
                    limits::Limit::Inputs,
                    limits::MAX_INPUTS,
                    format!(
                        "the template declares {} inputs, more than {}",
                        raw_inputs.len(),
                        limits::MAX_INPUTS
                    ),
                ),
            );
        }
        for (key, spec) in raw_inputs {
            let Ok(key) = InputName::parse(&key).map_err(|e| self.err(invalid("input name", &e)))
            else {
                continue;
            };
            let spec = spec.unwrap_or(RawInput {
                default: None,
                required: None,
                description: None,
            });
            if let Some(d) = &spec.default
                && let Err(e) = limits::check_input_value(key.as_str(), d)
            {
                self.over(&format!("inputs.{key}.default"), e);
            }
            inputs.insert(
                key,
                InputSpec {
                    default: spec.default,
                    required: spec.required.unwrap_or(false),
                    description: spec.description,
                },
            );
        }

        let env = self.env("env", raw.env);

        let raw_jobs = raw.jobs.unwrap_or_default();
        if raw_jobs.is_empty() {
            self.err("jobs must not be empty".into());
            return None;
        }
        if raw_jobs.len() > MAX_JOBS {
            self.err(format!(
                "template has {} jobs, more than the maximum of {MAX_JOBS}",
                raw_jobs.len()
            ));
            return None;
        }
        let jobs: Vec<Option<JobTemplate>> = raw_jobs
            .into_iter()
            .enumerate()
            .map(|(i, j)| self.job(i, j))
            .collect();
        // Cross-job checks need every job's name and needs; without them they would only
        // add noise to the errors already reported.
        let jobs: Vec<JobTemplate> = jobs.into_iter().collect::<Option<_>>()?;
        self.unique_names(&jobs);
        self.needs_exist(&jobs);
        if self.errors.is_empty() {
            self.acyclic(&jobs);
        }
        let template = Template {
            name,
            inputs,
            env,
            jobs,
        };
        self.expressions(&template);
        self.errors.is_empty().then_some(template)
    }

    fn env(&mut self, path: &str, raw: Option<UniqueMap<Scalar>>) -> BTreeMap<EnvKey, String> {
        let mut out = BTreeMap::new();
        for (key, Scalar(value)) in raw.map(|m| m.0).unwrap_or_default() {
            match EnvKey::parse(&key) {
                Ok(k) => {
                    out.insert(k, value);
                }
                Err(e) => self.err(invalid(&format!("{path} key"), &e)),
            }
        }
        out
    }

    fn job(&mut self, i: usize, raw: RawJob) -> Option<JobTemplate> {
        let before = self.errors.len();
        let p = format!("jobs[{i}]");

        let name = match raw.name {
            None => {
                self.err(format!("{p}.name is required"));
                None
            }
            Some(n) => JobName::parse(&n)
                .map_err(|e| self.err(invalid(&format!("{p}.name"), &e)))
                .ok(),
        };

        if let Some(image) = &raw.image {
            self.image(&p, image);
        }

        let script: Vec<String> = match raw.script {
            None => {
                self.err(format!("{p}.script is required"));
                Vec::new()
            }
            Some(lines) if lines.is_empty() => {
                self.err(format!("{p}.script must not be empty"));
                Vec::new()
            }
            Some(lines) => lines.into_iter().map(|Scalar(s)| s).collect(),
        };
        for (j, line) in script.iter().enumerate() {
            if line.trim().is_empty() {
                self.err(format!("{p}.script[{j}] must not be empty"));
            }
        }

        let env = self.env(&format!("{p}.env"), raw.env);

        let timeout = match raw.timeout {
            None => DEFAULT_JOB_TIMEOUT,
            Some(t) => parse_duration(&t).unwrap_or_else(|e| {
                self.err(format!("{p}.timeout: {e}"));
                DEFAULT_JOB_TIMEOUT
            }),
        };

        let mut needs = Vec::new();
        for (j, need) in raw.needs.unwrap_or_default().iter().enumerate() {
            match JobName::parse(need) {
                Err(e) => self.err(invalid(&format!("{p}.needs[{j}]"), &e)),
                Ok(n) if Some(&n) == name.as_ref() => {
                    self.err(format!(
                        "{p}.needs[{j}]: job {} cannot need itself",
                        quoted(need)
                    ));
                }
                Ok(n) if needs.contains(&n) => {
                    self.err(format!("{p}.needs lists {} more than once", quoted(need)));
                }
                Ok(n) => needs.push(n),
            }
        }

        let retry = match raw.retry {
            None => RetryPolicy::default(),
            Some(r) => self.retry(&p, r),
        };

        let resources = self.resources(&p, raw.resources);

        let name = name?;
        (self.errors.len() == before).then(|| JobTemplate {
            name,
            image: raw.image,
            script,
            env,
            timeout,
            needs,
            allow_failure: raw.allow_failure.unwrap_or(false),
            retry,
            when: raw.when.unwrap_or_default(),
            resources,
        })
    }

    fn resources(&mut self, p: &str, raw: Option<RawResources>) -> Resources {
        let Some(raw) = raw else {
            return Resources::default();
        };
        Resources {
            memory: self.limit(&format!("{p}.resources.memory"), raw.memory),
            cpus: self.limit(&format!("{p}.resources.cpus"), raw.cpus),
        }
    }

    fn limit<T: std::str::FromStr<Err = String>>(
        &mut self,
        path: &str,
        value: Option<Scalar>,
    ) -> Option<T> {
        let Scalar(text) = value?;
        text.parse()
            .map_err(|e: String| self.err(format!("{path}: {e}")))
            .ok()
    }

    fn image(&mut self, p: &str, image: &str) {
        if image.trim().is_empty() {
            self.err(format!("{p}.image must not be empty"));
            return;
        }
        // Whitespace inside `${{ … }}` is part of the expression, not of the image; the
        // expanded value is checked again at trigger time.
        let has_space = match segments(image) {
            Ok(segs) => segs.iter().any(|s| match s {
                Segment::Text(t) => t.chars().any(char::is_whitespace),
                Segment::Input(_) => false,
            }),
            // Reported by the expression check.
            Err(_) => false,
        };
        if has_space {
            self.err(format!(
                "{p}.image {} must not contain whitespace",
                quoted(image)
            ));
        }
    }

    fn retry(&mut self, p: &str, raw: RawRetry) -> RetryPolicy {
        let in_range = |n: i128| u32::try_from(n).ok().filter(|n| *n <= MAX_RETRIES);
        match raw {
            RawRetry::Count(n) => match in_range(n) {
                Some(n) => RetryPolicy::count(n),
                None => {
                    self.err(format!(
                        "{p}.retry is {n}: must be between 0 and {MAX_RETRIES}"
                    ));
                    RetryPolicy::default()
                }
            },
            RawRetry::Map(m) => {
                let max = in_range(m.max.into()).unwrap_or_else(|| {
                    self.err(format!(
                        "{p}.retry.max is {}: must be between 0 and {MAX_RETRIES}",
                        m.max
                    ));
                    0
                });
                let when = match m.when {
                    None => RetryPolicy::RETRYABLE.to_vec(),
                    Some(list) if list.is_empty() => {
                        self.err(format!(
                            "{p}.retry.when must not be empty (leave it out to retry every retryable failure)"
                        ));
                        Vec::new()
                    }
                    Some(list) => {
                        let mut when = Vec::new();
                        for (j, s) in list.iter().enumerate() {
                            match s.parse::<ErrorClass>() {
                                Ok(c) if RetryPolicy::RETRYABLE.contains(&c) => {
                                    if !when.contains(&c) {
                                        when.push(c);
                                    }
                                }
                                Ok(c) => self.err(format!(
                                    "{p}.retry.when[{j}]: {c} failures are never retried"
                                )),
                                Err(_) => self.err(format!(
                                    "{p}.retry.when[{j}] {} is not a failure class: must be one of {}",
                                    quoted(s),
                                    retryable_list()
                                )),
                            }
                        }
                        when
                    }
                };
                let exit_codes = m.exit_codes.unwrap_or_default();
                if !exit_codes.is_empty()
                    && !when.is_empty()
                    && !when.contains(&ErrorClass::ExitCode)
                {
                    self.err(format!(
                        "{p}.retry.exit_codes is set but retry.when does not include exit_code, so it would have no effect"
                    ));
                }
                RetryPolicy {
                    max,
                    when,
                    exit_codes,
                }
            }
        }
    }

    fn unique_names(&mut self, jobs: &[JobTemplate]) {
        let mut first: HashMap<&JobName, usize> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            if let Some(&f) = first.get(&job.name) {
                self.err(format!(
                    "duplicate job name {} (jobs[{f}] and jobs[{i}])",
                    quoted(job.name.as_str())
                ));
            } else {
                first.insert(&job.name, i);
            }
        }
    }

    fn needs_exist(&mut self, jobs: &[JobTemplate]) {
        let names: BTreeSet<&JobName> = jobs.iter().map(|j| &j.name).collect();
        for (i, job) in jobs.iter().enumerate() {
            for (j, need) in job.needs.iter().enumerate() {
                if !names.contains(need) {
                    self.err(format!(
                        "jobs[{i}].needs[{j}] {} is not a job of this template",
                        quoted(need.as_str())
                    ));
                }
            }
        }
    }

    /// Reports one cycle of `needs`, if any. Assumes names are unique and needs exist.
    fn acyclic(&mut self, jobs: &[JobTemplate]) {
        let index: HashMap<&JobName, usize> =
            jobs.iter().enumerate().map(|(i, j)| (&j.name, i)).collect();
        let needs: Vec<Vec<usize>> = jobs
            .iter()
            .map(|j| {
                j.needs
                    .iter()
                    .filter_map(|n| index.get(n).copied())
                    .collect()
            })
            .collect();
        // Kahn's algorithm: peel off jobs whose needs are all done.
        let mut pending: Vec<usize> = needs.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
        for (i, ns) in needs.iter().enumerate() {
            for &n in ns {
                dependents[n].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..jobs.len()).filter(|&i| pending[i] == 0).collect();
        while let Some(i) = ready.pop() {
            for &d in &dependents[i] {
                pending[d] -= 1;
                if pending[d] == 0 {
                    ready.push(d);
                }
            }
        }
        let Some(start) = (0..jobs.len()).find(|&i| pending[i] > 0) else {
            return;
        };
        // Every job left has a need that is also left, so following those from any of
        // them must come back to a job already on the path: that loop is a cycle.
        let mut path: Vec<usize> = Vec::new();
        let mut at = start;
        loop {
            if let Some(pos) = path.iter().position(|&p| p == at) {
                let cycle: Vec<&str> = path[pos..]
                    .iter()
                    .chain(std::iter::once(&at))
                    .map(|&k| jobs[k].name.as_str())
                    .collect();
                self.err(format!("jobs form a cycle: {}", cycle.join(" -> ")));
                return;
            }
            path.push(at);
            match needs[at].iter().find(|&&n| pending[n] > 0) {
                Some(&n) => at = n,
                None => return,
            }
        }
    }

    /// Checks every `${{ … }}` in the texts inputs are expanded in.
    fn expressions(&mut self, t: &Template) {
        let mut texts: Vec<(String, &str)> = t
            .env
            .iter()
            .map(|(k, v)| (format!("env.{k}"), v.as_str()))
            .collect();
        for (i, job) in t.jobs.iter().enumerate() {
            if let Some(image) = &job.image {
                texts.push((format!("jobs[{i}].image"), image));
            }
            for (j, line) in job.script.iter().enumerate() {
                texts.push((format!("jobs[{i}].script[{j}]"), line));
            }
            for (k, v) in &job.env {
                texts.push((format!("jobs[{i}].env.{k}"), v));
            }
        }
        for (path, text) in texts {
            match segments(text) {
                Err(e) => self.err(format!("{path}: {e}")),
                Ok(segs) => {
                    for seg in segs {
                        if let Segment::Input(name) = seg
                            && !t.declares(name)
                        {
                            self.err(format!(
                                "{path} uses input {}, which the template does not declare under inputs",
                                quoted(name)
                            ));
                        }
                    }
                }
            }
        }
    }
}

fn retryable_list() -> String {
    RetryPolicy::RETRYABLE
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn when_names_match_serde_and_parse_back() {
        for w in When::ALL {
            let json = serde_json::to_value(w).unwrap();
            assert_eq!(json, serde_json::Value::from(w.as_str()));
            assert_eq!(w.as_str().parse::<When>().unwrap(), w);
        }
        assert!("sometimes".parse::<When>().is_err());
    }

    /// The example from the template format's contract.
    const CONTRACT: &str = r#"
name: build                    # optional; the stored name wins
inputs:                        # optional
  profile: { default: release, description: cargo profile }
  version: { required: true }
env:                           # optional, for every job
  RUST_LOG: info
jobs:
  - name: compile
    image: rust:1.82
    script:
      - cargo build --profile ${{ inputs.profile }}
    env: { KEY: value }
    timeout: 10m
    needs: [other-job]
    allow_failure: false
    retry: 2
    when: on_success
  - name: other-job
    script:
      - echo "${{inputs.version}}"
    retry: { max: 2, when: [runner_failure, timeout, exit_code], exit_codes: [137] }
    when: manual
"#;

    fn ok(src: &str) -> Template {
        match parse_template(src) {
            Ok(t) => t,
            Err(e) => panic!("expected {src:?} to parse, got: {e}"),
        }
    }

    fn err(src: &str) -> TemplateError {
        match parse_template(src) {
            Ok(t) => panic!("expected {src:?} to fail, got {t:?}"),
            Err(e) => e,
        }
    }

    fn msg(src: &str) -> String {
        err(src).message
    }

    /// A one-job template with `extra` added to the job's mapping.
    fn job_with(extra: &str) -> String {
        format!("jobs:\n  - name: j\n    script: [x]\n{extra}")
    }

    #[test]
    fn parses_the_contract_example() {
        let t = ok(CONTRACT);
        assert_eq!(t.name.as_ref().map(TemplateName::as_str), Some("build"));
        assert_eq!(
            t.inputs["profile"],
            InputSpec {
                default: Some("release".into()),
                required: false,
                description: Some("cargo profile".into())
            }
        );
        assert_eq!(
            t.inputs["version"],
            InputSpec {
                default: None,
                required: true,
                description: None
            }
        );
        assert_eq!(t.env["RUST_LOG"], "info");
        let compile = &t.jobs[0];
        assert_eq!(compile.name.as_str(), "compile");
        assert_eq!(compile.image.as_deref(), Some("rust:1.82"));
        assert_eq!(
            compile.script,
            vec!["cargo build --profile ${{ inputs.profile }}"]
        );
        assert_eq!(compile.env["KEY"], "value");
        assert_eq!(compile.timeout, Duration::from_secs(600));
        assert_eq!(compile.needs, vec![JobName::parse("other-job").unwrap()]);
        assert!(!compile.allow_failure);
        assert_eq!(compile.retry, RetryPolicy::count(2));
        assert_eq!(compile.when, When::OnSuccess);
        let other = &t.jobs[1];
        assert_eq!(other.image, None);
        assert_eq!(
            other.retry,
            RetryPolicy {
                max: 2,
                when: vec![
                    ErrorClass::RunnerFailure,
                    ErrorClass::Timeout,
                    ErrorClass::ExitCode
                ],
                exit_codes: vec![137]
            }
        );
        assert_eq!(other.when, When::Manual);
        assert!(t.uses_dag());
    }

    #[test]
    fn defaults() {
        let t = ok("jobs: [{name: j, script: [make]}]");
        assert_eq!(t.name, None);
        assert!(t.inputs.is_empty() && t.env.is_empty());
        let j = &t.jobs[0];
        assert_eq!(j.timeout, DEFAULT_JOB_TIMEOUT);
        assert_eq!(j.retry, RetryPolicy::default());
        assert_eq!(j.retry.max, 0);
        assert_eq!(j.when, When::OnSuccess);
        assert!(!j.allow_failure);
        assert!(j.needs.is_empty() && j.env.is_empty() && j.image.is_none());
        assert!(!t.uses_dag());
    }

    #[test]
    fn json_round_trip() {
        let t = ok(CONTRACT);
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains(r#""timeout":600"#), "{json}");
        assert!(json.contains(r#""when":"on_success""#), "{json}");
        assert_eq!(serde_json::from_str::<Template>(&json).unwrap(), t);
    }

    #[test]
    fn error_display_includes_location_when_known() {
        let e = TemplateError {
            message: "boom".into(),
            line: Some(3),
            column: Some(5),
            limit: None,
        };
        assert_eq!(e.to_string(), "boom at line 3 column 5");
        assert_eq!(TemplateError::new("boom".into()).to_string(), "boom");
    }

    // --- size and shape -------------------------------------------------------------

    #[test]
    fn size_cap_is_checked_before_parsing() {
        // Not even valid YAML: the cap must win.
        let big = "[".repeat(MAX_TEMPLATE_BYTES + 1);
        let e = err(&big);
        assert_eq!(
            e.message,
            format!(
                "template is {} bytes, more than the maximum of 524288 bytes",
                MAX_TEMPLATE_BYTES + 1
            )
        );
        let base = "jobs: [{name: j, script: [x]}]\n#";
        let exact = format!("{base}{}", "x".repeat(MAX_TEMPLATE_BYTES - base.len()));
        assert_eq!(exact.len(), MAX_TEMPLATE_BYTES);
        ok(&exact);
    }

    #[test]
    fn job_count_is_capped() {
        let jobs = |n: usize| {
            let mut s = String::from("jobs:\n");
            for i in 0..n {
                s.push_str(&format!("  - {{name: j{i}, script: [x]}}\n"));
            }
            s
        };
        assert_eq!(ok(&jobs(MAX_JOBS)).jobs.len(), MAX_JOBS);
        assert_eq!(
            msg(&jobs(MAX_JOBS + 1)),
            "template has 501 jobs, more than the maximum of 500"
        );
    }

    #[test]
    fn jobs_must_not_be_empty() {
        assert_eq!(msg(""), "jobs must not be empty");
        assert_eq!(msg("name: x"), "jobs must not be empty");
        assert_eq!(msg("jobs: []"), "jobs must not be empty");
        assert_eq!(msg("jobs:"), "jobs must not be empty");
    }

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        let src = "jobs:\n  - name: a\n    script: [x]\n   bad: indent\n";
        let e = err(src);
        assert_eq!((e.line, e.column), (Some(4), Some(4)));
        assert!(
            e.message.contains("did not find expected '-' indicator"),
            "{e}"
        );
        assert!(e.to_string().ends_with(" at line 4 column 4"), "{e}");
        // The location is not repeated inside the message.
        assert!(!e.message.contains("line 4"), "{e}");

        let e = err("jobs:\n  - name: a\n    script: [x\n");
        assert_eq!((e.line, e.column), (Some(4), Some(1)));
        assert!(
            e.message.contains("did not find expected ',' or ']'"),
            "{e}"
        );

        let e = err("jobs: [ok]\n\tname: x\n");
        assert!(e.line.is_some() && e.column.is_some(), "{e:?}");
    }

    #[test]
    fn unknown_field_is_reported_with_location() {
        let e = err("jobs:\n  - name: a\n    scrpit: [x]\n");
        assert!(
            e.message
                .starts_with(r#"jobs[0]: unknown field "scrpit", expected one of "name""#),
            "{e}"
        );
        assert_eq!((e.line, e.column), (Some(3), Some(5)));
        let e = err("jobz: []\n");
        assert!(e.message.contains(r#"unknown field "jobz""#), "{e}");
        assert_eq!(e.line, Some(1));
        let e = err("inputs:\n  v: { defualt: 1 }\njobs: [{name: j, script: [x]}]\n");
        assert!(
            e.message.contains(r#"inputs.v: unknown field "defualt""#),
            "{e}"
        );
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn type_errors_have_path_and_location() {
        let e = err("jobs: 5\n");
        assert_eq!(
            e.message,
            r#"jobs: invalid type: integer "5", expected a sequence"#
        );
        assert_eq!((e.line, e.column), (Some(1), Some(7)));

        let e = err("- a\n");
        assert!(e.message.contains("expected a template mapping"), "{e}");

        // An unquoted colon makes a map, not a shell line.
        let e = err("jobs:\n  - name: a\n    script:\n      - echo a: b\n");
        assert_eq!(
            e.message,
            "jobs[0].script[0]: invalid type: map, expected a string"
        );
        assert_eq!((e.line, e.column), (Some(4), Some(9)));

        let e = err(&job_with("    allow_failure: yes\n"));
        assert!(
            e.message.starts_with("jobs[0].allow_failure: invalid type"),
            "{e}"
        );
        assert_eq!(e.line, Some(4));

        let e = err(&job_with("    when: never\n"));
        assert!(e.message.contains(r#"unknown variant "never""#), "{e}");
        assert_eq!(e.line, Some(4));

        let e = err(&job_with("    needs: other\n"));
        assert!(e.message.starts_with("jobs[0].needs: invalid type"), "{e}");

        let e = err("jobs:\n  - name: a\n    name: b\n    script: [x]\n");
        assert!(e.message.contains(r#"duplicate field "name""#), "{e}");

        let e = err("jobs: [{name: j, script: [x]}]\n---\njobs: []\n");
        assert!(e.message.contains("more than one document"), "{e}");
    }

    // --- names ------------------------------------------------------------------------

    #[test]
    fn template_name_is_validated() {
        assert_eq!(
            msg("name: a b\njobs: [{name: j, script: [x]}]"),
            r#"name "a b" is invalid: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"#
        );
    }

    #[test]
    fn job_name_is_required_and_validated() {
        let src = "jobs:\n - {name: a, script: [x]}\n - {name: b, script: [x]}\n - {name: 'a b', script: [x]}\n";
        assert_eq!(
            msg(src),
            r#"jobs[2].name "a b" is invalid: must match ^[A-Za-z0-9_-]{1,64}$"#
        );
        assert_eq!(msg("jobs: [{script: [x]}]"), "jobs[0].name is required");
        // Scalars are names too.
        assert_eq!(
            ok("jobs: [{name: 123, script: [x]}]").jobs[0].name.as_str(),
            "123"
        );
    }

    #[test]
    fn duplicate_job_names() {
        let src = "jobs:\n - {name: compile, script: [x]}\n - {name: b, script: [x]}\n - {name: c, script: [x]}\n - {name: compile, script: [x]}\n";
        assert_eq!(
            msg(src),
            r#"duplicate job name "compile" (jobs[0] and jobs[3])"#
        );
    }

    // --- script -------------------------------------------------------------------------

    #[test]
    fn script_rules() {
        assert_eq!(
            msg("jobs:\n - {name: a, script: [x]}\n - {name: b, script: []}\n"),
            "jobs[1].script must not be empty"
        );
        assert_eq!(msg("jobs: [{name: a}]"), "jobs[0].script is required");
        assert_eq!(
            msg("jobs: [{name: a, script: [x, '  ']}]"),
            "jobs[0].script[1] must not be empty"
        );
        let e = err("jobs:\n  - name: a\n    script: [x, ~]\n");
        assert_eq!(
            e.message,
            "jobs[0].script: invalid type: null, expected a string, number or boolean"
        );
        assert_eq!(e.line, Some(3));
        let t = ok("jobs: [{name: a, script: [1.10, true, 42, 'null', \"multi\\nline\"]}]");
        assert_eq!(
            t.jobs[0].script,
            vec!["1.10", "true", "42", "null", "multi\nline"]
        );
        let t = ok("jobs:\n  - name: a\n    script:\n      - |\n        set -e\n        make\n");
        assert_eq!(t.jobs[0].script, vec!["set -e\nmake\n"]);
    }

    // --- env ----------------------------------------------------------------------------

    #[test]
    fn env_rules() {
        let t =
            ok("env: {A: 1, B: true, C: '', D: 1.50}\njobs: [{name: a, script: [x], env: {E: x}}]");
        assert_eq!(t.env["A"], "1");
        assert_eq!(t.env["B"], "true");
        assert_eq!(t.env["C"], "");
        assert_eq!(t.env["D"], "1.50");
        assert_eq!(t.jobs[0].env["E"], "x");

        let e = err(&job_with("    env:\n      A:\n"));
        assert!(
            e.message.starts_with("jobs[0].env: invalid type: null"),
            "{e}"
        );
        assert_eq!(e.line, Some(5));
        let e = err(&job_with("    env:\n      A: {b: c}\n"));
        assert!(
            e.message.starts_with("jobs[0].env.A: invalid type: map"),
            "{e}"
        );
        let e = err("env:\n  A: [1]\njobs: [{name: j, script: [x]}]");
        assert!(
            e.message.starts_with("env.A: invalid type: sequence"),
            "{e}"
        );

        assert_eq!(
            msg(&job_with("    env: {A-B: x}\n")),
            r#"jobs[0].env key "A-B" is invalid: must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$"#
        );
        assert_eq!(
            msg("env: {1X: x}\njobs: [{name: j, script: [x]}]"),
            r#"env key "1X" is invalid: must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$"#
        );
        let e = err(&job_with("    env:\n      A: 1\n      A: 2\n"));
        assert_eq!(e.message, r#"jobs[0].env: duplicate key "A""#);
        assert_eq!(e.line, Some(5));
    }

    // --- inputs and expressions -----------------------------------------------------------

    #[test]
    fn input_rules() {
        let t = ok(
            "inputs:\n  n: {default: 5}\n  b: {default: false, required: true}\n  f: {default: 1.10}\n  bare:\n  empty: {}\njobs: [{name: j, script: [x]}]",
        );
        assert_eq!(t.inputs["n"].default.as_deref(), Some("5"));
        assert_eq!(t.inputs["b"].default.as_deref(), Some("false"));
        assert!(t.inputs["b"].required);
        assert_eq!(t.inputs["f"].default.as_deref(), Some("1.10"));
        assert_eq!(
            t.inputs["bare"],
            InputSpec {
                default: None,
                required: false,
                description: None
            }
        );
        assert!(t.declares("empty") && !t.declares("nope"));

        assert_eq!(
            msg("inputs: {'a b': {}}\njobs: [{name: j, script: [x]}]"),
            r#"input name "a b" is invalid: must match ^[A-Za-z_][A-Za-z0-9_-]{0,63}$"#
        );
        let e = err("inputs:\n  v: 5\njobs: [{name: j, script: [x]}]");
        assert!(e.message.starts_with("inputs.v: invalid type"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = err("inputs:\n  v: {default: [1]}\njobs: [{name: j, script: [x]}]");
        assert!(
            e.message.starts_with("inputs.v.default: invalid type"),
            "{e}"
        );
        let e = err("inputs:\n  v: {}\n  v: {}\njobs: [{name: j, script: [x]}]");
        assert_eq!(e.message, r#"inputs: duplicate key "v""#);
    }

    #[test]
    fn expressions_must_reference_declared_inputs() {
        assert_eq!(
            msg("jobs: [{name: j, script: ['echo ${{ inputs.version }}']}]"),
            r#"jobs[0].script[0] uses input "version", which the template does not declare under inputs"#
        );
        assert_eq!(
            msg("env: {A: '${{inputs.x}}'}\njobs: [{name: j, script: [x]}]"),
            r#"env.A uses input "x", which the template does not declare under inputs"#
        );
        assert_eq!(
            msg(
                "jobs: [{name: j, image: 'r:${{ inputs.v }}', script: [x], env: {B: '${{ inputs.w }}'}}]"
            ),
            r#"jobs[0].image uses input "v", which the template does not declare under inputs; jobs[0].env.B uses input "w", which the template does not declare under inputs"#
        );
    }

    #[test]
    fn only_input_expressions_are_allowed() {
        assert_eq!(
            msg("jobs: [{name: j, script: ['echo ${{ secrets.TOKEN }}']}]"),
            r#"jobs[0].script[0]: unsupported expression "${{ secrets.TOKEN }}": only ${{ inputs.NAME }} is supported"#
        );
        let m = msg("inputs: {x: {}}\njobs: [{name: j, script: ['echo ${{ inputs.x']}]");
        assert!(
            m.starts_with("jobs[0].script[0]: unterminated expression"),
            "{m}"
        );
        let m = msg("jobs: [{name: j, script: [x], env: {A: '${{ inputs.1 }}'}}]");
        assert!(
            m.starts_with(r#"jobs[0].env.A: invalid input name "1""#),
            "{m}"
        );
    }

    #[test]
    fn shell_variables_and_compact_expressions_are_fine() {
        let t = ok(
            "inputs: {x: {}, y: {}}\njobs: [{name: j, image: 'i:${{inputs.x}}', script: ['echo $HOME ${PATH} ${{inputs.x}}${{   inputs.y   }}']}]",
        );
        assert_eq!(
            t.referenced_inputs(),
            ["x", "y"]
                .iter()
                .map(|s| InputName::parse(s).unwrap())
                .collect()
        );
    }

    #[test]
    fn referenced_inputs_covers_all_expandable_text() {
        let t = ok(
            "inputs: {a: {}, b: {}, c: {}, d: {}, unused: {}}\nenv: {E: '${{ inputs.a }}'}\njobs: [{name: j, image: 'x:${{ inputs.b }}', script: ['${{ inputs.c }}'], env: {F: '${{ inputs.d }}'}}]",
        );
        let got: Vec<String> = t
            .referenced_inputs()
            .into_iter()
            .map(InputName::into_string)
            .collect();
        assert_eq!(got, vec!["a", "b", "c", "d"]);
    }

    // --- image ------------------------------------------------------------------------------

    #[test]
    fn image_rules() {
        assert_eq!(
            msg(&job_with("    image: ''\n")),
            "jobs[0].image must not be empty"
        );
        assert_eq!(
            msg(&job_with("    image: 'rust 1.82'\n")),
            r#"jobs[0].image "rust 1.82" must not contain whitespace"#
        );
        let t =
            ok("inputs: {v: {}}\njobs: [{name: j, image: 'rust:${{ inputs.v }}', script: [x]}]");
        assert_eq!(t.jobs[0].image.as_deref(), Some("rust:${{ inputs.v }}"));
        // A null image is no image.
        assert_eq!(ok(&job_with("    image:\n")).jobs[0].image, None);
    }

    #[test]
    fn missing_images_lists_jobs_without_one() {
        let t = ok(
            "jobs: [{name: a, script: [x], image: i}, {name: b, script: [x]}, {name: c, script: [x]}]",
        );
        let names: Vec<&str> = t.missing_images().iter().map(|n| n.as_str()).collect();
        assert_eq!(names, vec!["b", "c"]);
    }

    // --- timeout ----------------------------------------------------------------------------

    #[test]
    fn timeout_rules() {
        let t = |s: &str| ok(&job_with(&format!("    timeout: {s}\n"))).jobs[0].timeout;
        assert_eq!(t("10m"), Duration::from_secs(600));
        assert_eq!(t("1h30m"), Duration::from_secs(5400));
        assert_eq!(t("600"), Duration::from_secs(600));
        assert_eq!(t("'45s'"), Duration::from_secs(45));
        let m = |s: &str| msg(&job_with(&format!("    timeout: {s}\n")));
        assert!(m("1.5h").starts_with(r#"jobs[0].timeout: invalid duration "1.5h""#));
        assert!(m("0").contains("must be greater than zero"));
        assert!(m("25h").contains("exceeds the maximum of 24h"));
        assert!(m("-5").starts_with("jobs[0].timeout: invalid duration"));
        assert!(m("1.5").starts_with("jobs[0].timeout: invalid duration"));
        assert!(m("10 m").contains("invalid duration"));
        let e = err(&job_with("    timeout: [1]\n"));
        assert!(
            e.message.starts_with("jobs[0].timeout: invalid type"),
            "{e}"
        );
    }

    // --- needs ------------------------------------------------------------------------------

    #[test]
    fn needs_must_name_other_jobs_of_the_template() {
        assert_eq!(
            msg("jobs: [{name: a, script: [x], needs: [nope]}]"),
            r#"jobs[0].needs[0] "nope" is not a job of this template"#
        );
        assert_eq!(
            msg("jobs: [{name: a, script: [x], needs: [a]}]"),
            r#"jobs[0].needs[0]: job "a" cannot need itself"#
        );
        assert_eq!(
            msg("jobs: [{name: a, script: [x]}, {name: b, script: [x], needs: [a, a]}]"),
            r#"jobs[1].needs lists "a" more than once"#
        );
        assert_eq!(
            msg("jobs: [{name: a, script: [x], needs: ['x y']}]"),
            r#"jobs[0].needs[0] "x y" is invalid: must match ^[A-Za-z0-9_-]{1,64}$"#
        );
    }

    #[test]
    fn needs_cycles_are_reported_by_name() {
        assert_eq!(
            msg("jobs: [{name: a, script: [x], needs: [b]}, {name: b, script: [x], needs: [a]}]"),
            "jobs form a cycle: a -> b -> a"
        );
        // A job that is merely downstream of a cycle is not part of it.
        assert_eq!(
            msg(
                "jobs:\n - {name: z, script: [x], needs: [c]}\n - {name: a, script: [x]}\n - {name: b, script: [x], needs: [a, d]}\n - {name: c, script: [x], needs: [b]}\n - {name: d, script: [x], needs: [c]}\n"
            ),
            "jobs form a cycle: c -> b -> d -> c"
        );
    }

    #[test]
    fn acyclic_dag_is_accepted() {
        let t = ok(
            "jobs:\n - {name: a, script: [x]}\n - {name: b, script: [x], needs: [a]}\n - {name: c, script: [x], needs: [a, b]}\n - {name: d, script: [x], needs: [c, b]}\n",
        );
        assert!(t.uses_dag());
        assert_eq!(t.jobs[3].needs.len(), 2);
        // A later job may be needed by an earlier one.
        ok("jobs: [{name: a, script: [x], needs: [b]}, {name: b, script: [x]}]");
    }

    // --- retry ------------------------------------------------------------------------------

    fn retry(yaml: &str) -> Result<RetryPolicy, String> {
        parse_template(&job_with(&format!("    retry: {yaml}\n")))
            .map(|t| t.jobs[0].retry.clone())
            .map_err(|e| e.message)
    }

    #[test]
    fn retry_count_form() {
        assert_eq!(retry("3"), Ok(RetryPolicy::count(3)));
        assert_eq!(retry("0"), Ok(RetryPolicy::default()));
        assert_eq!(
            RetryPolicy::count(1).when,
            vec![
                ErrorClass::RunnerFailure,
                ErrorClass::Timeout,
                ErrorClass::ExitCode,
                ErrorClass::OomKilled,
                ErrorClass::ImageNotFound
            ]
        );
        assert_eq!(retry("10"), Ok(RetryPolicy::count(10)));
        assert_eq!(
            retry("11"),
            Err("jobs[0].retry is 11: must be between 0 and 10".into())
        );
        assert_eq!(
            retry("-1"),
            Err("jobs[0].retry is -1: must be between 0 and 10".into())
        );
        assert!(retry("'2'").unwrap_err().contains("expected a retry count"));
        assert!(retry("[1]").unwrap_err().contains("expected a retry count"));
    }

    #[test]
    fn retry_map_form() {
        assert_eq!(retry("{max: 2}"), Ok(RetryPolicy::count(2)));
        assert_eq!(
            retry("{max: 1, when: [oom_killed, timeout, oom_killed]}"),
            Ok(RetryPolicy {
                max: 1,
                when: vec![ErrorClass::OomKilled, ErrorClass::Timeout],
                exit_codes: vec![]
            })
        );
        assert_eq!(
            retry("{max: 1, exit_codes: [137, -1]}").map(|r| r.exit_codes),
            Ok(vec![137, -1])
        );
        assert_eq!(
            retry("{max: 11}"),
            Err("jobs[0].retry.max is 11: must be between 0 and 10".into())
        );
        assert_eq!(
            retry("{max: 1, when: [canceled]}"),
            Err("jobs[0].retry.when[0]: canceled failures are never retried".into())
        );
        assert_eq!(
            retry("{max: 1, when: [timeout, config_error]}"),
            Err("jobs[0].retry.when[1]: config_error failures are never retried".into())
        );
        assert_eq!(
            retry("{max: 1, when: [flaky]}"),
            Err(r#"jobs[0].retry.when[0] "flaky" is not a failure class: must be one of runner_failure, timeout, exit_code, oom_killed, image_not_found"#.into())
        );
        assert!(
            retry("{max: 1, when: []}")
                .unwrap_err()
                .contains("retry.when must not be empty")
        );
        assert!(
            retry("{max: 1, when: [timeout], exit_codes: [1]}")
                .unwrap_err()
                .contains("does not include exit_code")
        );
        assert!(
            retry("{when: [timeout]}")
                .unwrap_err()
                .contains(r#"missing field "max""#)
        );
        assert!(
            retry("{max: 1, tries: 2}")
                .unwrap_err()
                .contains(r#"unknown field "tries""#)
        );
    }

    #[test]
    fn retry_allows() {
        let r = RetryPolicy::count(2);
        assert!(r.allows(ErrorClass::Timeout, None, 1));
        assert!(r.allows(ErrorClass::ExitCode, Some(1), 2));
        assert!(!r.allows(ErrorClass::ExitCode, Some(1), 3));
        assert!(!r.allows(ErrorClass::Canceled, None, 1));
        assert!(!r.allows(ErrorClass::ConfigError, None, 1));
        assert!(!RetryPolicy::default().allows(ErrorClass::Timeout, None, 1));

        let r = RetryPolicy {
            max: 3,
            when: vec![ErrorClass::ExitCode, ErrorClass::RunnerFailure],
            exit_codes: vec![137],
        };
        assert!(r.allows(ErrorClass::ExitCode, Some(137), 1));
        assert!(!r.allows(ErrorClass::ExitCode, Some(1), 1));
        assert!(!r.allows(ErrorClass::ExitCode, None, 1));
        // The exit code filter only concerns exit_code failures.
        assert!(r.allows(ErrorClass::RunnerFailure, None, 3));
        assert!(!r.allows(ErrorClass::Timeout, None, 1));
    }

    // --- when / allow_failure -----------------------------------------------------------------

    #[test]
    fn when_and_allow_failure() {
        let t = ok(
            "jobs: [{name: a, script: [x], when: manual, allow_failure: true}, {name: b, script: [x], when: always}]",
        );
        assert_eq!(t.jobs[0].when, When::Manual);
        assert!(t.jobs[0].allow_failure);
        assert_eq!(t.jobs[1].when, When::Always);
        assert_eq!(
            serde_json::to_string(&When::OnSuccess).unwrap(),
            r#""on_success""#
        );
    }

    // --- reporting -------------------------------------------------------------------------

    #[test]
    fn all_problems_are_reported_together() {
        let src = "jobs:\n - {name: a, script: [x], timeout: 1.5h}\n - {name: b, script: []}\n - {name: 'a b', script: [x]}";
        let m = msg(src);
        let parts: Vec<&str> = m.split("; ").collect();
        assert_eq!(parts.len(), 3, "{m}");
        assert!(parts[0].starts_with("jobs[0].timeout: invalid duration \"1.5h\""));
        assert_eq!(parts[1], "jobs[1].script must not be empty");
        assert!(parts[2].starts_with("jobs[2].name \"a b\" is invalid"));
    }

    #[test]
    fn long_error_lists_are_summarized() {
        let mut src = String::from("jobs:\n");
        for _ in 0..30 {
            src.push_str(" - {name: '?', script: [x]}\n");
        }
        let m = msg(&src);
        assert_eq!(m.matches("is invalid").count(), MAX_REPORTED);
        assert!(m.ends_with("; and 10 more problems"), "{m}");
    }

    // --- robustness ------------------------------------------------------------------------

    #[test]
    fn hostile_yaml_is_rejected_without_panicking() {
        // Deep nesting and alias expansion bombs.
        let deep = format!("jobs: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_template(&deep).is_err());
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\njobs: [{name: j, script: [x], env: {A: *g}}]";
        assert!(parse_template(bomb).is_err());
        assert!(parse_template("\u{0}").is_err());
    }

    #[test]
    fn alias_expansion_is_capped_before_it_is_built() {
        // One 1 KiB scalar aliased 100,000 times: a 300 KB document that would expand to
        // 100 MB of script.
        let src = format!(
            "inputs: {{x: {{description: &a \"{}\"}}}}\njobs: [{{name: j, image: i, script: [{}x]}}]\n",
            "l".repeat(1024),
            "*a, ".repeat(100_000)
        );
        let e = err(&src);
        let limit = e.limit.clone().expect("a limit error");
        assert_eq!(limit.limit, crate::limits::Limit::YamlScalarBytes);
        // Four times the source (plus 4 KiB), below the absolute cap.
        assert_eq!(limit.max, 4 * src.len() + 4096);
        assert!(limit.max < crate::limits::MAX_YAML_SCALAR_BYTES);
        assert!(
            e.message
                .contains(&format!("(limit yaml_scalar_bytes: {})", limit.max)),
            "{e}"
        );
        assert!(e.line.is_some(), "{e:?}");

        // Many aliases of a sequence of empty strings: the node count trips first.
        let src = format!(
            "jobs:\n  - {{name: a, image: i, script: &s [{}]}}\n{}",
            "'', ".repeat(200),
            (0..2000)
                .map(|i| format!("  - {{name: j{i}, image: i, script: *s}}\n"))
                .collect::<String>()
        );
        let e = err(&src);
        // Too many jobs as well, but the expansion is refused before that is looked at.
        assert_eq!(
            e.limit.as_ref().map(|l| l.limit),
            Some(crate::limits::Limit::YamlNodes)
        );
    }

    #[test]
    fn honest_anchors_are_fine() {
        let src = "jobs:\n  - name: a\n    image: &img rust:1.82\n    script: &s [cargo build, cargo test]\n    env: &e {A: '1', B: '2'}\n  - {name: b, image: *img, script: *s, env: *e}\n  - {name: c, image: *img, script: *s, env: *e}\n";
        let t = ok(src);
        assert_eq!(t.jobs[2].script, vec!["cargo build", "cargo test"]);
        assert_eq!(t.jobs[1].env["B"], "2");
    }

    #[test]
    fn input_counts_and_defaults_are_capped() {
        let inputs = |n: usize| {
            (0..n)
                .map(|i| format!("  i{i}: {{}}\n"))
                .collect::<String>()
        };
        ok(&format!(
            "inputs:\n{}jobs: [{{name: j, script: [x]}}]",
            inputs(crate::limits::MAX_INPUTS)
        ));
        let e = err(&format!(
            "inputs:\n{}jobs: [{{name: j, script: [x]}}]",
            inputs(crate::limits::MAX_INPUTS + 1)
        ));
        assert_eq!(
            e.limit.as_ref().map(|l| l.limit),
            Some(crate::limits::Limit::Inputs)
        );
        assert!(
            e.message
                .starts_with("inputs: the template declares 101 inputs, more than 100"),
            "{e}"
        );
        let big = "d".repeat(crate::limits::MAX_INPUT_VALUE_BYTES + 1);
        let e = err(&format!(
            "inputs: {{v: {{default: {big}}}}}\njobs: [{{name: j, script: [x]}}]"
        ));
        assert_eq!(
            e.limit.as_ref().map(|l| l.limit),
            Some(crate::limits::Limit::InputValueBytes)
        );
        assert!(
            e.message
                .starts_with("inputs.v.default: input \"v\" is 65537 bytes"),
            "{e}"
        );
    }

    /// Invariants every successfully parsed template satisfies.
    fn check_invariants(t: &Template) {
        assert!(!t.jobs.is_empty() && t.jobs.len() <= MAX_JOBS);
        let names: BTreeSet<&JobName> = t.jobs.iter().map(|j| &j.name).collect();
        assert_eq!(names.len(), t.jobs.len());
        for j in &t.jobs {
            assert!(!j.script.is_empty());
            assert!(j.script.iter().all(|l| !l.trim().is_empty()));
            assert!(j.needs.iter().all(|n| names.contains(n) && *n != j.name));
            assert!(j.timeout > Duration::ZERO && j.timeout <= crate::duration::MAX_JOB_TIMEOUT);
            assert!(j.retry.max <= MAX_RETRIES);
        }
        for i in t.referenced_inputs() {
            assert!(t.declares(i.as_str()));
        }
    }

    /// Applies `edits` (position, kind, byte) to `base`, keeping it valid UTF-8.
    fn mutate(base: &str, edits: &[(usize, u8, char)]) -> String {
        let mut chars: Vec<char> = base.chars().collect();
        for &(pos, kind, c) in edits {
            if chars.is_empty() {
                chars.push(c);
                continue;
            }
            let at = pos % chars.len();
            match kind % 3 {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, c),
                _ => chars[at] = c,
            }
        }
        chars.into_iter().collect()
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in any::<String>()) {
            if let Ok(t) = parse_template(&s) {
                check_invariants(&t);
            }
        }

        #[test]
        fn never_panics_on_yamlish_text(s in "[a-z:{}\\[\\],\\-# \n'\"&*!|>$.0-9]{0,200}") {
            if let Ok(t) = parse_template(&s) {
                check_invariants(&t);
            }
        }

        #[test]
        fn never_panics_on_mutated_templates(
            edits in proptest::collection::vec(
                (any::<usize>(), any::<u8>(),
                 prop_oneof![
                     Just(' '), Just('\n'), Just(':'), Just('-'), Just('['), Just('{'),
                     Just('$'), Just('}'), Just('"'), Just('\''), Just('&'), Just('*'),
                     Just('#'), Just('\t'), any::<char>(),
                 ]),
                1..8,
            )
        ) {
            let src = mutate(CONTRACT, &edits);
            match parse_template(&src) {
                Ok(t) => check_invariants(&t),
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
        }
    }
}
