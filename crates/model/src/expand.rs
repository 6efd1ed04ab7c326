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

use crate::duration::serde_secs;
use crate::names::{InputName, JobName, quoted};
use crate::resources::Resources;
use crate::template::{JobTemplate, RetryPolicy, Template, When};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A piece of template text: literal text or an input reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// Text copied as is.
    Text(&'a str),
    /// `${{ inputs.NAME }}`, holding a name that follows the [`InputName`] rule.
    Input(&'a str),
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// Splits `s` into literal text and input references, or explains the first bad
/// expression.
pub(crate) fn segments(s: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            out.push(Segment::Text(&rest[..start]));
        }
        let after_open = &rest[start + OPEN.len()..];
        let Some(len) = after_open.find(CLOSE) else {
            return Err(format!(
                "unterminated expression {}: \"${{{{\" has no closing \"}}}}\"",
                quoted(&rest[start..])
            ));
        };
        let whole = &rest[start..start + OPEN.len() + len + CLOSE.len()];
        let inner = after_open[..len].trim();
        let Some(name) = inner.strip_prefix("inputs.") else {
            return Err(format!(
                "unsupported expression {}: only ${{{{ inputs.NAME }}}} is supported",
                quoted(whole)
            ));
        };
        if let Err(e) = InputName::parse(name) {
            return Err(format!(
                "invalid input name {} in expression {}: must match {}",
                quoted(name),
                quoted(whole),
                e.rule
            ));
        }
        out.push(Segment::Input(name));
        rest = &rest[start + whole.len()..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    Ok(out)
}

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
}

/// Expands `job` (a job of `template`) with resolved `inputs`, normally the output of
/// [`resolve_inputs`].
///
/// A declared input missing from `inputs` falls back to the template's default; if it has
/// none it expands to the empty string, unless it is `required`
/// ([`ExpandError::MissingInput`]). Substituted values are never re-expanded.
pub fn expand_job(
    template: &Template,
    job: &JobTemplate,
    inputs: &BTreeMap<InputName, String>,
) -> Result<ExpandedJob, ExpandError> {
    let expand = |s: &str| expand_str(template, s, inputs);
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
    let mut env = BTreeMap::new();
    for (k, v) in template.env.iter().chain(&job.env) {
        env.insert(k.as_str().to_owned(), expand(v)?);
    }
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
    })
}

/// Substitutes every input reference in `s` in one pass.
fn expand_str(
    template: &Template,
    s: &str,
    inputs: &BTreeMap<InputName, String>,
) -> Result<String, ExpandError> {
    // Fast path, and a guarantee: text without an expression comes back byte for byte.
    if !s.contains(OPEN) {
        return Ok(s.to_owned());
    }
    let segs = segments(s).map_err(|message| ExpandError::InvalidExpression { message })?;
    let mut out = String::with_capacity(s.len());
    for seg in segs {
        match seg {
            Segment::Text(t) => out.push_str(t),
            Segment::Input(name) => {
                if let Some(v) = inputs.get(name) {
                    out.push_str(v);
                    continue;
                }
                let Some(spec) = template.inputs.get(name) else {
                    return Err(ExpandError::UnknownInput {
                        template: template_label(template),
                        name: name.to_owned(),
                    });
                };
                match &spec.default {
                    Some(d) => out.push_str(d),
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
    fn segments_split_text_and_references() {
        assert_eq!(
            segments("a ${{ inputs.x }}b${{inputs.y}}").unwrap(),
            vec![
                Segment::Text("a "),
                Segment::Input("x"),
                Segment::Text("b"),
                Segment::Input("y")
            ]
        );
        assert_eq!(segments("").unwrap(), vec![]);
        assert_eq!(
            segments("$x ${x} }}").unwrap(),
            vec![Segment::Text("$x ${x} }}")]
        );
        assert_eq!(
            segments("${{\tinputs.a-b\n}}}").unwrap(),
            vec![Segment::Input("a-b"), Segment::Text("}")]
        );
    }

    #[test]
    fn segments_reject_other_expressions() {
        let e = segments("x ${{ secrets.TOKEN }}").unwrap_err();
        assert_eq!(
            e,
            r#"unsupported expression "${{ secrets.TOKEN }}": only ${{ inputs.NAME }} is supported"#
        );
        let e = segments("echo ${{ inputs.x").unwrap_err();
        assert!(
            e.starts_with(r#"unterminated expression "${{ inputs.x""#),
            "{e}"
        );
        let e = segments("${{ inputs.1x }}").unwrap_err();
        assert!(e.contains(r#"invalid input name "1x""#), "{e}");
        let e = segments("${{ inputs.a b }}").unwrap_err();
        assert!(e.contains(r#"invalid input name "a b""#), "{e}");
        assert!(segments("${{ inputs. x }}").is_err());
        assert!(segments("${{ }}").is_err());
        assert!(segments("${{ INPUTS.x }}").is_err());
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
        let job = expand_job(&t, &t.jobs[0], &inputs).unwrap();
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

        let test = expand_job(&t, &t.jobs[1], &inputs).unwrap();
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
        let err = expand_job(&t, &t.jobs[0], &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, ExpandError::MissingInput { ref name, .. } if name == "version"));
        let job = expand_job(&t, &t.jobs[0], &resolved(&[("version", "1")])).unwrap();
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
        let job = expand_job(&t, &t.jobs[0], &inputs).unwrap();
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
            let err = expand_job(&t, &t.jobs[0], &resolved(&[("version", bad)])).unwrap_err();
            assert!(matches!(err, ExpandError::InvalidImage { .. }), "{err}");
        }
        let t = parse_template(
            "inputs: {img: {}}\njobs: [{name: j, image: '${{ inputs.img }}', script: [x]}]",
        )
        .unwrap();
        let err = expand_job(&t, &t.jobs[0], &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"job "j" has image "" after expanding inputs: an image must be non-empty and contain no whitespace"#
        );
    }

    #[test]
    fn unknown_input_and_bad_expression_in_unvalidated_templates() {
        let mut t = build();
        t.jobs[1].script = vec!["echo ${{ inputs.nope }}".into()];
        let err = expand_job(&t, &t.jobs[1], &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"input "nope" is used by template "build" but not declared under inputs"#
        );
        t.jobs[1].script = vec!["echo ${{ github.sha }}".into()];
        let err = expand_job(&t, &t.jobs[1], &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, ExpandError::InvalidExpression { .. }));
        assert!(err.to_string().contains("github.sha"));
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
            let job = expand_job(&t, &t.jobs[0], &inputs).unwrap();
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
            let job = expand_job(&t, &t.jobs[0], &resolved(&[("a", &value)])).unwrap();
            prop_assert_eq!(&job.script[0], &value);
        }

        #[test]
        fn text_without_expressions_is_unchanged(s in any::<String>()) {
            prop_assume!(!s.contains("${{"));
            let mut t = one_input_template();
            t.jobs[0].script = vec![s.clone()];
            t.jobs[0].env.insert(crate::names::EnvKey::parse("K").unwrap(), s.clone());
            let job = expand_job(&t, &t.jobs[0], &resolved(&[("a", "v")])).unwrap();
            prop_assert_eq!(&job.script[0], &s);
            prop_assert_eq!(&job.env["K"], &s);
        }

        #[test]
        fn segments_never_panic_and_reassemble(s in "(\\$|\\{|\\}|inputs\\.|[a-z ]){0,30}") {
            if let Ok(segs) = segments(&s) {
                let texts: usize = segs.iter().map(|g| match g {
                    Segment::Text(t) => t.len(),
                    Segment::Input(_) => 0,
                }).sum();
                prop_assert!(texts <= s.len());
                if !s.contains("${{") {
                    prop_assert_eq!(segs.len(), usize::from(!s.is_empty()));
                }
            }
        }
    }
}
