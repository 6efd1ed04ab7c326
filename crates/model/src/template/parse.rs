//! [`parse_template`]: YAML → [`Template`], and the `Builder` that checks each job.

use crate::duration::{DEFAULT_JOB_TIMEOUT, parse_duration};
use crate::expr::{Segment, segments};
use crate::limits::{self, LimitExceeded};
use crate::names::{EnvKey, JobName, NameError, TemplateName, quoted};
use crate::resources::Resources;
use crate::template::raw::{RawJob, RawResources, RawTemplate, Scalar, UniqueMap};
use crate::template::{
    JobTemplate, MAX_JOBS, MAX_TEMPLATE_BYTES, RetryPolicy, Template, TemplateError,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// How many validation problems one error message lists before summarizing the rest.
pub(super) const MAX_REPORTED: usize = 20;

/// Parses and validates a template.
///
/// Checks, in order: the size cap ([`MAX_TEMPLATE_BYTES`]); YAML syntax and shapes (with
/// line and column), while counting nodes and scalar bytes as aliases are expanded
/// ([`limits::yaml_node_cap`], [`limits::yaml_scalar_cap`]); then every rule of the template format, reporting all problems found
/// joined with `"; "` (the first 20 of them). Cross-job rules (`needs`
/// targets, cycles) and input references are checked once the jobs themselves are valid.
pub fn parse_template(src: &str) -> Result<Template, TemplateError> {
    let raw = deserialize(src)?;
    let mut b = Builder::default();
    let template = b.template(raw);
    b.finish(template)
}

/// The size cap, the secret-expression check and the counted YAML deserialization every
/// pipeline text goes through (stored templates and repo pipeline files alike).
pub(super) fn deserialize(src: &str) -> Result<RawTemplate, TemplateError> {
    if src.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::new(format!(
            "template is {} bytes, more than the maximum of {MAX_TEMPLATE_BYTES} bytes",
            src.len()
        )));
    }
    if let Some(line) = super::secrets::secret_expression_line(src) {
        return Err(TemplateError::new(super::secrets::secret_expression_error(
            line,
        )));
    }
    // Aliases are followed lazily by the YAML library: counting what each visitor is handed
    // bounds their expansion before it is copied anywhere.
    let budget = crate::yaml_budget::Budget::new(
        limits::yaml_node_cap(src.len()),
        limits::yaml_scalar_cap(src.len()),
    );
    let de = crate::yaml_budget::Counted::new(yaml_serde::Deserializer::from_str(src), &budget);
    RawTemplate::deserialize(de).map_err(|e| {
        let mut err = TemplateError::from_yaml(&e);
        err.limit = budget.exceeded();
        err
    })
}

/// Which text is being read: what it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Kind {
    /// A stored template: no `include`, no `rules`.
    #[default]
    Template,
    /// A repo's `.gitweave.yml`.
    RepoFile,
}

#[derive(Default)]
pub(super) struct Builder {
    pub(super) kind: Kind,
    pub(super) errors: Vec<String>,
    /// The first size cap reported, if any.
    pub(super) limit: Option<LimitExceeded>,
}

pub(super) fn invalid(path: &str, e: &NameError) -> String {
    format!(
        "{path} {} is invalid: must match {}",
        quoted(&e.value),
        e.rule
    )
}

impl Builder {
    pub(super) fn err(&mut self, msg: String) {
        self.errors.push(msg);
    }

    pub(super) fn over(&mut self, path: &str, e: LimitExceeded) {
        self.err(format!("{path}: {e}"));
        self.limit.get_or_insert(e);
    }

    /// The built value, or every problem reported as one error.
    pub(super) fn finish<T>(&mut self, built: Option<T>) -> Result<T, TemplateError> {
        match (built, self.errors.is_empty()) {
            (Some(t), true) => Ok(t),
            _ => {
                let mut err = TemplateError::new(self.message());
                err.limit = self.limit.take();
                Err(err)
            }
        }
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
    pub(super) fn template(&mut self, raw: RawTemplate) -> Option<Template> {
        if self.kind == Kind::Template {
            for (key, given) in [
                ("include", raw.include.is_some()),
                ("rules", raw.rules.is_some()),
            ] {
                if given {
                    self.err(format!(
                        "{key} is read only in a repo's pipeline file (.gitweave.yml), not in a stored template"
                    ));
                }
            }
        }
        let name = raw.name.and_then(|n| {
            TemplateName::parse(&n)
                .map_err(|e| self.err(invalid("name", &e)))
                .ok()
        });

        let inputs = self.inputs(raw.inputs);

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

    pub(super) fn env(
        &mut self,
        path: &str,
        raw: Option<UniqueMap<Scalar>>,
    ) -> BTreeMap<EnvKey, String> {
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
        let secrets = self.secrets(&p, raw.secrets, &env);
        let runs_on = self.runs_on(&p, raw.runs_on);
        let services = self.services(&p, raw.services, name.as_ref().map(JobName::as_str));
        let artifacts = self.artifacts(&p, raw.artifacts);
        let cache = self.cache(&p, raw.cache);
        let rules = match (raw.rules, self.kind) {
            (None, _) => Vec::new(),
            (Some(_), Kind::Template) => {
                self.err(format!(
                    "{p}.rules is read only in a repo's pipeline file (.gitweave.yml), not in a stored template"
                ));
                Vec::new()
            }
            (Some(r), Kind::RepoFile) => self.rules(&format!("{p}.rules"), r),
        };

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
            secrets,
            runs_on,
            services,
            artifacts,
            cache,
            rules,
        })
    }

    /// `runs_on`: label pairs a runner must carry (SPEC §13); `engine` is `docker` or
    /// `shell`.
    fn runs_on(&mut self, p: &str, raw: Option<UniqueMap<Scalar>>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let pairs = raw.map(|m| m.0).unwrap_or_default();
        if pairs.len() > crate::labels::MAX_LABELS {
            self.err(format!(
                "{p}.runs_on holds {} labels; at most {} are allowed",
                pairs.len(),
                crate::labels::MAX_LABELS
            ));
            return out;
        }
        for (key, Scalar(value)) in pairs {
            let checked = crate::labels::check_key(&key)
                .and_then(|()| crate::labels::check_value(&key, &value));
            if let Err(e) = checked {
                self.err(format!("{p}.runs_on: {e}"));
                continue;
            }
            if key == "engine" && !crate::labels::ENGINES.contains(&value.as_str()) {
                self.err(format!(
                    "{p}.runs_on.engine must be one of {}, not {}",
                    crate::labels::ENGINES.join(", "),
                    quoted(&value)
                ));
                continue;
            }
            out.insert(key, value);
        }
        out
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

    pub(super) fn image(&mut self, p: &str, image: &str) {
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
}
