//! `${{ inputs.NAME }}` resolution at trigger time.
//!
//! The expression syntax is deliberately tiny: `${{`, optional whitespace, `inputs.`, an
//! [`InputName`], optional whitespace, `}}`. Anything else between `${{` and `}}` is
//! rejected when the template is parsed ([`crate::template::parse_template`]), so a typo
//! cannot silently reach a shell. There is no escape for a literal `${{`: shell syntax never
//! needs one, and plain `$VAR` / `${VAR}` are left alone.
//!
//! Expansion is a single left-to-right pass over the template text: a substituted value is
//! copied verbatim and never scanned again, so an input value containing `${{ inputs.x }}`
//! cannot pull in other inputs.
//!
//! Expansion is metered ([`RunBudget`]): every piece is paid for before it is appended, so a
//! job stops expanding the moment it would pass [`MAX_JOB_EXPANDED_BYTES`] (or the run
//! [`MAX_RUN_EXPANDED_BYTES`]); the oversized text is never built.

use crate::duration::serde_secs;
use crate::expr::{OPEN, Segment, segments};
use crate::limits::{self, Limit, LimitExceeded, MAX_JOB_EXPANDED_BYTES, MAX_RUN_EXPANDED_BYTES};
use crate::names::{InputName, JobName, quoted};
use crate::resources::Resources;
use crate::template::{JobTemplate, RetryPolicy, Template, When};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Why inputs could not be resolved or a job could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A `required` input has no value from the trigger, the attachment or the template.
    #[error("input {name:?} is required{} but was not given", by_template(.template))]
    MissingInput {
        /// The template's display name, when known (see [`ExpandError::with_template`]).
        template: Option<String>,
        /// The input.
        name: String,
    },
    /// The template text references an input the template does not declare. Parsed
    /// templates cannot contain one; this guards templates built or stored otherwise.
    #[error("input {name:?} is used{} but not declared under inputs", by_template(.template))]
    UnknownInput {
        /// The template's display name, when known (see [`ExpandError::with_template`]).
        template: Option<String>,
        /// The input.
        name: String,
    },
    /// The template text holds a `${{ … }}` that is not an input reference. Parsed
    /// templates cannot contain one; this guards templates built or stored otherwise.
    #[error("{message}")]
    InvalidExpression {
        /// What is wrong, naming the expression.
        message: String,
    },
    /// After substituting inputs, the job's image is empty or contains whitespace.
    #[error(
        "job {job:?} has image {shown} after expanding inputs: an image must be non-empty and contain no whitespace",
        shown = quoted(.image)
    )]
    InvalidImage {
        /// The job.
        job: String,
        /// The expanded image.
        image: String,
    },
    /// After substituting inputs, the job's cache key (or its prefix) is not a key.
    #[error("job {job:?} has an invalid cache key after expanding inputs: {reason}")]
    InvalidCacheKey {
        /// The job.
        job: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A size cap was hit: an input value too large, or a job or the run expanding to more
    /// than it may hold. Expansion stopped there.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
}

fn by_template(t: &Option<String>) -> String {
    match t {
        Some(name) => format!(" by template {name:?}"),
        None => String::new(),
    }
}

impl ExpandError {
    /// Names the template in the message, e.g. with its stored name, which wins over the
    /// `name:` written in the YAML.
    pub fn with_template(mut self, display_name: impl Into<String>) -> Self {
        if let ExpandError::MissingInput { template, .. }
        | ExpandError::UnknownInput { template, .. } = &mut self
        {
            *template = Some(display_name.into());
        }
        self
    }
}

fn template_label(t: &Template) -> Option<String> {
    t.name.as_ref().map(|n| n.as_str().to_owned())
}

/// Resolves the value of every input `template` declares: the trigger's value, else the
/// attachment's default, else the template's default.
///
/// A `required` input with no value anywhere is [`ExpandError::MissingInput`] (naming the
/// template by its YAML `name:` if any; use [`ExpandError::with_template`] for the stored
/// name). An optional input with no value anywhere is left out of the result and expands
/// to the empty string. Names in `attach_defaults` or `trigger` that this template does
/// not declare are ignored here; see [`undeclared`] for the run-wide check.
pub fn resolve_inputs(
    template: &Template,
    attach_defaults: &BTreeMap<String, String>,
    trigger: &BTreeMap<String, String>,
) -> Result<BTreeMap<InputName, String>, ExpandError> {
    let mut out = BTreeMap::new();
    for (name, spec) in &template.inputs {
        let value = trigger
            .get(name.as_str())
            .or_else(|| attach_defaults.get(name.as_str()))
            .or(spec.default.as_ref());
        match value {
            Some(v) => {
                limits::check_input_value(name.as_str(), v)?;
                out.insert(name.clone(), v.clone());
            }
            None if spec.required => {
                return Err(ExpandError::MissingInput {
                    template: template_label(template),
                    name: name.as_str().to_owned(),
                });
            }
            None => {}
        }
    }
    Ok(out)
}

/// The names in `given` that none of `templates` declares, sorted and without
/// duplicates: a run must reject values no template of it can use, since they are
/// almost certainly typos.
pub fn undeclared<'a>(
    templates: &[&Template],
    given: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    given
        .into_iter()
        .filter(|name| !templates.iter().any(|t| t.declares(name)))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A job with every `${{ inputs.NAME }}` replaced: what a runner executes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpandedJob {
    /// The job's name.
    pub name: JobName,
    /// The container image, if any.
    pub image: Option<String>,
    /// Shell lines, run in order by `/bin/sh`, stopping at the first failure.
    pub script: Vec<String>,
    /// The template's `env` overlaid by the job's `env`.
    pub env: BTreeMap<String, String>,
    /// How long the job may run (stored as whole seconds).
    #[serde(with = "serde_secs")]
    pub timeout: Duration,
    /// Jobs of the same template that must succeed first.
    pub needs: Vec<JobName>,
    /// Whether the job's failure neither stops nor fails the run.
    pub allow_failure: bool,
    /// When and how often a failed attempt is retried.
    pub retry: RetryPolicy,
    /// When the job runs.
    pub when: When,
    /// Memory and CPU limits it asks for (absent in specs stored before it existed).
    #[serde(default)]
    pub resources: Resources,
    /// The secrets the job names (SPEC §10), resolved and opened by pipeline-svc at claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<crate::template::SecretRef>,
    /// Runner labels it needs (SPEC §13). Stored in the job's spec, from which the `jobs`
    /// table derives `requires` (this with `engine: docker` unless it names an engine).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runs_on: BTreeMap<String, String>,
    /// Its services (SPEC §12), inputs expanded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<crate::template::Service>,
    /// What it keeps after it ends (SPEC §11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<crate::template::Artifacts>,
    /// Its cache (SPEC §11), inputs expanded; a `files` key is turned into text by
    /// pipeline-svc, which can read the run's commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::template::Cache>,
}

/// What the jobs of one run have spent so far of the expansion caps. One per run, passed
/// to every [`expand_job`] of it.
#[derive(Debug, Clone)]
pub struct RunBudget {
    job_max: usize,
    run_max: usize,
    used: usize,
}

impl Default for RunBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl RunBudget {
    /// The caps of the service: [`MAX_JOB_EXPANDED_BYTES`] and [`MAX_RUN_EXPANDED_BYTES`].
    pub fn new() -> Self {
        Self::with_caps(MAX_JOB_EXPANDED_BYTES, MAX_RUN_EXPANDED_BYTES)
    }

    /// Other caps (tests and fuzzing use small ones).
    pub fn with_caps(job_max: usize, run_max: usize) -> Self {
        Self {
            job_max,
            run_max,
            used: 0,
        }
    }

    /// Bytes the run's expanded jobs hold so far.
    pub fn used(&self) -> usize {
        self.used
    }
}

/// One job's spending, checked before each append.
struct Meter<'a> {
    job: &'a str,
    job_max: usize,
    run_max: usize,
    run_before: usize,
    used: usize,
}

impl Meter<'_> {
    fn pay(&mut self, bytes: usize) -> Result<(), LimitExceeded> {
        let used = self.used.saturating_add(bytes);
        if used > self.job_max {
            return Err(LimitExceeded::new(
                Limit::JobExpandedBytes,
                self.job_max,
                format!(
                    "job {:?} holds more than {} bytes once its inputs are substituted",
                    self.job, self.job_max
                ),
            ));
        }
        if self.run_before.saturating_add(used) > self.run_max {
            return Err(LimitExceeded::new(
                Limit::RunExpandedBytes,
                self.run_max,
                format!(
                    "the run's jobs hold more than {} bytes once their inputs are substituted (reached at job {:?})",
                    self.run_max, self.job
                ),
            ));
        }
        self.used = used;
        Ok(())
    }

    fn push(&mut self, out: &mut String, s: &str) -> Result<(), LimitExceeded> {
        self.pay(s.len())?;
        out.push_str(s);
        Ok(())
    }
}

/// Expands `job` (a job of `template`) with resolved `inputs`, normally the output of
/// [`resolve_inputs`], paying for its text from `run`.
///
/// A declared input missing from `inputs` falls back to the template's default; if it has
/// none it expands to the empty string, unless it is `required`
/// ([`ExpandError::MissingInput`]). Substituted values are never re-expanded. The job's
/// name, image, script lines and env keys and values may hold at most the job cap, and all
/// the run's jobs the run cap ([`RunBudget`]); passing either stops the expansion at once
/// with [`ExpandError::Limit`], before the oversized text is built.
pub fn expand_job(
    template: &Template,
    job: &JobTemplate,
    inputs: &BTreeMap<InputName, String>,
    run: &mut RunBudget,
) -> Result<ExpandedJob, ExpandError> {
    let mut meter = Meter {
        job: job.name.as_str(),
        job_max: run.job_max,
        run_max: run.run_max,
        run_before: run.used,
        used: 0,
    };
    meter.pay(job.name.as_str().len())?;
    let mut expand = |s: &str| expand_str(template, s, inputs, &mut meter);
    let image = match &job.image {
        Some(raw) => {
            let image = expand(raw)?;
            if image.is_empty() || image.chars().any(char::is_whitespace) {
                return Err(ExpandError::InvalidImage {
                    job: job.name.as_str().to_owned(),
                    image,
                });
            }
            Some(image)
        }
        None => None,
    };
    let script = job
        .script
        .iter()
        .map(|line| expand(line))
        .collect::<Result<Vec<_>, _>>()?;
    // The job's env wins over the template's; only the value that is kept is expanded.
    let mut raw_env: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in template.env.iter().chain(&job.env) {
        raw_env.insert(k.as_str(), v.as_str());
    }
    let mut env = BTreeMap::new();
    for (k, v) in raw_env {
        let key = expand(k)?;
        env.insert(key, expand(v)?);
    }
    let mut services = Vec::with_capacity(job.services.len());
    for s in &job.services {
        // Paid for like any text of the job (a name holds no expression).
        expand(s.name.as_str())?;
        let image = expand(&s.image)?;
        if image.is_empty() || image.chars().any(char::is_whitespace) {
            return Err(ExpandError::InvalidImage {
                job: format!("{} (service {})", job.name.as_str(), s.name.as_str()),
                image,
            });
        }
        let mut env = BTreeMap::new();
        for (k, v) in &s.env {
            env.insert(expand(k)?, expand(v)?);
        }
        let command = match &s.command {
            Some(words) => Some(
                words
                    .iter()
                    .map(|w| expand(w))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let ready = match &s.ready {
            Some(r) => Some(crate::template::Ready {
                check: match &r.check {
                    crate::template::ReadyCheck::Command(c) => {
                        crate::template::ReadyCheck::Command(expand(c)?)
                    }
                    tcp @ crate::template::ReadyCheck::Tcp(_) => tcp.clone(),
                },
                timeout: r.timeout,
            }),
            None => None,
        };
        services.push(crate::template::Service {
            name: s.name.clone(),
            image,
            env,
            command,
            ready,
        });
    }
    let cache = match &job.cache {
        None => None,
        Some(c) => {
            let key = match &c.key {
                crate::template::CacheKey::Text(t) => crate::template::CacheKey::Text(expand(t)?),
                crate::template::CacheKey::Files { files, prefix } => {
                    crate::template::CacheKey::Files {
                        files: files.clone(),
                        prefix: prefix.as_deref().map(&mut expand).transpose()?,
                    }
                }
            };
            let text = match &key {
                crate::template::CacheKey::Text(t) => Some(t.as_str()),
                crate::template::CacheKey::Files { prefix, .. } => prefix.as_deref(),
            };
            if let Some(Err(reason)) = text.map(crate::template::check_cache_key) {
                return Err(ExpandError::InvalidCacheKey {
                    job: job.name.as_str().to_owned(),
                    reason,
                });
            }
            Some(crate::template::Cache {
                key,
                paths: c.paths.clone(),
                policy: c.policy,
                resolved: None,
            })
        }
    };
    run.used = run.used.saturating_add(meter.used);
    Ok(ExpandedJob {
        name: job.name.clone(),
        image,
        script,
        env,
        timeout: job.timeout,
        needs: job.needs.clone(),
        allow_failure: job.allow_failure,
        retry: job.retry.clone(),
        when: job.when,
        resources: job.resources,
        secrets: job.secrets.clone(),
        runs_on: job.runs_on.clone(),
        services,
        artifacts: job.artifacts.clone(),
        cache,
    })
}

/// Substitutes every input reference in `s` in one pass, paying `meter` for each piece
/// before it is appended.
fn expand_str(
    template: &Template,
    s: &str,
    inputs: &BTreeMap<InputName, String>,
    meter: &mut Meter<'_>,
) -> Result<String, ExpandError> {
    // Fast path, and a guarantee: text without an expression comes back byte for byte.
    if !s.contains(OPEN) {
        meter.pay(s.len())?;
        return Ok(s.to_owned());
    }
    let segs = segments(s).map_err(|message| ExpandError::InvalidExpression { message })?;
    let mut out = String::new();
    for seg in segs {
        match seg {
            Segment::Text(t) => meter.push(&mut out, t)?,
            Segment::Input(name) => {
                if let Some(v) = inputs.get(name) {
                    meter.push(&mut out, v)?;
                    continue;
                }
                let Some(spec) = template.inputs.get(name) else {
                    return Err(ExpandError::UnknownInput {
                        template: template_label(template),
                        name: name.to_owned(),
                    });
                };
                match &spec.default {
                    Some(d) => meter.push(&mut out, d)?,
                    None if spec.required => {
                        return Err(ExpandError::MissingInput {
                            template: template_label(template),
                            name: name.to_owned(),
                        });
                    }
                    None => {}
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::template::parse_template;
    use proptest::prelude::*;

    const BUILD: &str = r#"
name: build
inputs:
  profile: { default: release, description: cargo profile }
  version: { required: true }
  extra: {}
  greeting: { default: hi, required: true }
env:
  RUST_LOG: info
  VERSION: "v${{ inputs.version }}"
jobs:
  - name: compile
    image: "rust:${{inputs.version}}"
    script:
      - cargo build --profile ${{ inputs.profile }}
      - echo "[${{ inputs.extra }}]" $HOME ${PATH}
    env: { RUST_LOG: debug, P: "${{ inputs.profile }}" }
    timeout: 10m
    retry: 2
  - name: test
    needs: [compile]
    script: [cargo test]
"#;

    fn build() -> Template {
        parse_template(BUILD).unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolved(pairs: &[(&str, &str)]) -> BTreeMap<InputName, String> {
        pairs
            .iter()
            .map(|(k, v)| (InputName::parse(k).unwrap(), v.to_string()))
            .collect()
    }

    #[test]
    fn resolve_prefers_trigger_then_attachment_then_template() {
        let t = build();
        let got = resolve_inputs(
            &t,
            &map(&[("profile", "dev"), ("version", "1.80")]),
            &map(&[("version", "1.82"), ("nobody", "x")]),
        )
        .unwrap();
        assert_eq!(
            got,
            resolved(&[("profile", "dev"), ("version", "1.82"), ("greeting", "hi")])
        );
        let got = resolve_inputs(&t, &BTreeMap::new(), &map(&[("version", "1")])).unwrap();
        assert_eq!(got.get("profile").map(String::as_str), Some("release"));
        // Optional input with no value anywhere: absent.
        assert!(!got.contains_key("extra"));
    }

    #[test]
    fn missing_required_input_names_input_and_template() {
        let t = build();
        let err = resolve_inputs(&t, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            ExpandError::MissingInput {
                template: Some("build".into()),
                name: "version".into()
            }
        );
        assert_eq!(
            err.to_string(),
            r#"input "version" is required by template "build" but was not given"#
        );
        assert_eq!(
            err.clone().with_template("stored-name").to_string(),
            r#"input "version" is required by template "stored-name" but was not given"#
        );
        let mut anon = t.clone();
        anon.name = None;
        let err = resolve_inputs(&anon, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"input "version" is required but was not given"#
        );
    }

    #[test]
    fn undeclared_lists_names_no_template_declares() {
        let a = build();
        let b = parse_template("inputs: { other: {} }\njobs: [{name: x, script: [true]}]").unwrap();
        let given = [
            "zeta".to_string(),
            "profile".to_string(),
            "other".to_string(),
            "alpha".to_string(),
            "zeta".to_string(),
        ];
        assert_eq!(undeclared(&[&a, &b], &given), vec!["alpha", "zeta"]);
        assert_eq!(undeclared(&[&a], &given), vec!["alpha", "other", "zeta"]);
        assert!(undeclared(&[&a, &b], &[]).is_empty());
    }

    #[test]
    fn expand_job_substitutes_everywhere_and_overlays_env() {
        let t = build();
        let inputs = resolve_inputs(&t, &BTreeMap::new(), &map(&[("version", "1.82")])).unwrap();
        let job = expand_job(&t, &t.jobs[0], &inputs, &mut RunBudget::new()).unwrap();
        assert_eq!(job.name.as_str(), "compile");
        assert_eq!(job.image.as_deref(), Some("rust:1.82"));
        assert_eq!(
            job.script,
            vec![
                "cargo build --profile release",
                r#"echo "[]" $HOME ${PATH}"#
            ]
        );
        assert_eq!(
            job.env,
            map(&[
                ("RUST_LOG", "debug"),
                ("VERSION", "v1.82"),
                ("P", "release")
            ])
        );
        assert_eq!(job.timeout, Duration::from_secs(600));
        assert_eq!(job.retry.max, 2);
        assert_eq!(job.when, When::OnSuccess);

        let test = expand_job(&t, &t.jobs[1], &inputs, &mut RunBudget::new()).unwrap();
        assert_eq!(test.needs, vec![JobName::parse("compile").unwrap()]);
        assert_eq!(test.image, None);
        assert_eq!(test.env, map(&[("RUST_LOG", "info"), ("VERSION", "v1.82")]));

        let json = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<ExpandedJob>(&json).unwrap(), job);
    }

    #[test]
    fn expand_job_falls_back_to_defaults_and_reports_missing_required() {
        let t = build();
        // Not resolved first: defaults still apply, required still enforced.
        let err = expand_job(&t, &t.jobs[0], &BTreeMap::new(), &mut RunBudget::new()).unwrap_err();
        assert!(matches!(err, ExpandError::MissingInput { ref name, .. } if name == "version"));
        let job = expand_job(
            &t,
            &t.jobs[0],
            &resolved(&[("version", "1")]),
            &mut RunBudget::new(),
        )
        .unwrap();
        assert_eq!(job.script[0], "cargo build --profile release");
    }

    #[test]
    fn input_values_are_not_re_expanded() {
        let mut t = build();
        t.jobs[0].image = None;
        let inputs = resolved(&[
            ("version", "${{ inputs.profile }}"),
            ("profile", "${{ inputs.version }} $(id) ${{"),
        ]);
        let job = expand_job(&t, &t.jobs[0], &inputs, &mut RunBudget::new()).unwrap();
        assert_eq!(
            job.script[0],
            "cargo build --profile ${{ inputs.version }} $(id) ${{"
        );
        assert_eq!(job.env["VERSION"], "v${{ inputs.profile }}");
        assert_eq!(job.env["P"], "${{ inputs.version }} $(id) ${{");
    }

    #[test]
    fn invalid_image_after_expansion_is_rejected() {
        let t = build();
        for bad in ["1 2", "a\nb", "x\t"] {
            let err = expand_job(
                &t,
                &t.jobs[0],
                &resolved(&[("version", bad)]),
                &mut RunBudget::new(),
            )
            .unwrap_err();
            assert!(matches!(err, ExpandError::InvalidImage { .. }), "{err}");
        }
        let t = parse_template(
            "inputs: {img: {}}\njobs: [{name: j, image: '${{ inputs.img }}', script: [x]}]",
        )
        .unwrap();
        let err = expand_job(&t, &t.jobs[0], &BTreeMap::new(), &mut RunBudget::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"job "j" has image "" after expanding inputs: an image must be non-empty and contain no whitespace"#
        );
    }

    #[test]
    fn unknown_input_and_bad_expression_in_unvalidated_templates() {
        let mut t = build();
        t.jobs[1].script = vec!["echo ${{ inputs.nope }}".into()];
        let err = expand_job(&t, &t.jobs[1], &BTreeMap::new(), &mut RunBudget::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"input "nope" is used by template "build" but not declared under inputs"#
        );
        t.jobs[1].script = vec!["echo ${{ github.sha }}".into()];
        let err = expand_job(&t, &t.jobs[1], &BTreeMap::new(), &mut RunBudget::new()).unwrap_err();
        assert!(matches!(err, ExpandError::InvalidExpression { .. }));
        assert!(err.to_string().contains("github.sha"));
    }

    fn size(job: &ExpandedJob) -> usize {
        job.name.as_str().len()
            + job.image.as_ref().map_or(0, String::len)
            + job.script.iter().map(String::len).sum::<usize>()
            + job
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    #[test]
    fn a_job_stops_expanding_at_its_cap() {
        let refs = "${{ inputs.a }}".repeat(17);
        let mut t = one_input_template();
        t.jobs[0].script = vec![refs];
        let big = "x".repeat(limits::MAX_INPUT_VALUE_BYTES);
        let err = expand_job(
            &t,
            &t.jobs[0],
            &resolved(&[("a", &big)]),
            &mut RunBudget::new(),
        )
        .unwrap_err();
        let ExpandError::Limit(e) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(e.limit, Limit::JobExpandedBytes);
        assert_eq!(
            err.to_string(),
            "job \"j\" holds more than 1048576 bytes once its inputs are substituted (limit job_expanded_bytes: 1048576)"
        );
        // Sixteen values of 64 KiB plus the one-byte name pass the cap by one byte; fifteen fit.
        t.jobs[0].script = vec!["${{ inputs.a }}".repeat(15)];
        let mut run = RunBudget::new();
        let job = expand_job(&t, &t.jobs[0], &resolved(&[("a", &big)]), &mut run).unwrap();
        assert_eq!(run.used(), size(&job));
    }

    #[test]
    fn the_run_stops_expanding_at_its_cap() {
        let mut t = one_input_template();
        t.jobs[0].script = vec!["${{ inputs.a }}".into()];
        let inputs = resolved(&[("a", &"y".repeat(999))]);
        let mut run = RunBudget::with_caps(1000, 2500);
        // Each job is its name (1 byte) and 999 bytes of script: exactly the job cap.
        expand_job(&t, &t.jobs[0], &inputs, &mut run).unwrap();
        expand_job(&t, &t.jobs[0], &inputs, &mut run).unwrap();
        assert_eq!(run.used(), 2000);
        let err = expand_job(&t, &t.jobs[0], &inputs, &mut run).unwrap_err();
        assert!(
            matches!(&err, ExpandError::Limit(e) if e.limit == Limit::RunExpandedBytes && e.max == 2500),
            "{err:?}"
        );
        assert_eq!(run.used(), 2000, "a refused job spends nothing");
    }

    #[test]
    fn oversized_input_values_are_refused_wherever_they_come_from() {
        let t = one_input_template();
        let big = "x".repeat(limits::MAX_INPUT_VALUE_BYTES + 1);
        for (attach, trigger) in [
            (map(&[("a", &big)]), BTreeMap::new()),
            (BTreeMap::new(), map(&[("a", &big)])),
        ] {
            let err = resolve_inputs(&t, &attach, &trigger).unwrap_err();
            assert!(
                matches!(&err, ExpandError::Limit(e) if e.limit == Limit::InputValueBytes),
                "{err:?}"
            );
        }
        let mut t = t;
        t.inputs
            .values_mut()
            .for_each(|s| s.default = Some(big.clone()));
        assert!(resolve_inputs(&t, &BTreeMap::new(), &BTreeMap::new()).is_err());
    }

    fn one_input_template() -> Template {
        parse_template("inputs: {a: {}}\njobs: [{name: j, script: [x]}]").unwrap()
    }

    proptest! {
        #[test]
        fn substituted_values_are_copied_verbatim(
            value in any::<String>(),
            before in "[^$]{0,20}",
            after in "[^$]{0,20}",
        ) {
            let mut t = one_input_template();
            t.jobs[0].script = vec![format!("{before}${{{{ inputs.a }}}}{after}")];
            let inputs = resolved(&[("a", &value)]);
            let job = expand_job(&t, &t.jobs[0], &inputs, &mut RunBudget::new()).unwrap();
            prop_assert_eq!(&job.script[0], &format!("{before}{value}{after}"));
        }

        #[test]
        fn values_that_look_like_expressions_stay_literal(
            prefix in ".{0,10}",
            name in "[a-z]{1,5}",
        ) {
            let mut t = one_input_template();
            t.jobs[0].script = vec!["${{ inputs.a }}".into()];
            let value = format!("{prefix}${{{{ inputs.{name} }}}}");
            let job = expand_job(&t, &t.jobs[0], &resolved(&[("a", &value)]), &mut RunBudget::new()).unwrap();
            prop_assert_eq!(&job.script[0], &value);
        }

        #[test]
        fn text_without_expressions_is_unchanged(s in any::<String>()) {
            prop_assume!(!s.contains("${{"));
            let mut t = one_input_template();
            t.jobs[0].script = vec![s.clone()];
            t.jobs[0].env.insert(crate::names::EnvKey::parse("K").unwrap(), s.clone());
            let job = expand_job(&t, &t.jobs[0], &resolved(&[("a", "v")]), &mut RunBudget::new()).unwrap();
            prop_assert_eq!(&job.script[0], &s);
            prop_assert_eq!(&job.env["K"], &s);
        }

        #[test]
        fn expansion_never_passes_its_caps(
            lines in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![
                    Just("${{ inputs.a }}".to_owned()),
                    Just("${{ inputs.b }}".to_owned()),
                    "[a-z ]{0,8}",
                ], 0..12),
                1..6,
            ),
            a_len in 0usize..400,
            b_len in 0usize..400,
            job_max in 0usize..3000,
            run_max in 0usize..6000,
            jobs in 1usize..6,
        ) {
            let mut t = parse_template("inputs: {a: {}, b: {}}\njobs: [{name: j, script: [x]}]").unwrap();
            t.jobs[0].script = lines.into_iter().map(|l| l.concat()).collect();
            let inputs = resolved(&[("a", &"a".repeat(a_len)), ("b", &"b".repeat(b_len))]);
            let mut run = RunBudget::with_caps(job_max, run_max);
            for _ in 0..jobs {
                let before = run.used();
                match expand_job(&t, &t.jobs[0], &inputs, &mut run) {
                    Ok(job) => {
                        prop_assert!(size(&job) <= job_max);
                        prop_assert_eq!(run.used(), before + size(&job));
                    }
                    Err(ExpandError::Limit(_)) => prop_assert_eq!(run.used(), before),
                    Err(e) => prop_assert!(false, "unexpected error {e}"),
                }
                prop_assert!(run.used() <= run_max);
            }
        }
    }
}
