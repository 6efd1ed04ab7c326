//! Size caps that keep one template, trigger or attachment from exhausting pipeline-svc.
//!
//! Every cap is checked before the thing it bounds is built: YAML nodes while the template
//! is deserialised ([`crate::template::parse_template`]), expanded text while inputs are
//! substituted ([`crate::expand::expand_job`]), so an oversized value is refused before it
//! is allocated, never measured afterwards. A cap that is hit is a [`LimitExceeded`], whose
//! message names the limit and its value.
//!
//! The numbers, and why:
//!
//! | limit | value | why |
//! |---|---|---|
//! | [`MAX_INPUT_VALUE_BYTES`] | 64 KiB | an input is a version, a flag, a path; a secret's cap is the same |
//! | [`MAX_INPUTS`] | 100 | per template, per trigger, per attachment |
//! | [`MAX_YAML_NODES`] | 524,288 | one node per byte of the largest template: what it could hold without aliases |
//! | [`MAX_YAML_SCALAR_BYTES`] | 2 MiB | scalar text after aliases: four times the largest template |
//! | [`YAML_EXPANSION_FACTOR`] | 4 | aliases may make a document at most 4 times (plus 4 KiB) what its source holds |
//! | [`MAX_JOB_EXPANDED_BYTES`] | 1 MiB | one job's text (name, image, script, env) after inputs |
//! | [`MAX_RUN_EXPANDED_BYTES`] | 16 MiB | the whole run's expanded jobs |
//! | [`MAX_RUN_JOBS`] | 1,000 | jobs in one run (two full templates of 500) |
//! | [`MAX_ATTACHED_TEMPLATES`] | 100 | templates attached to one repo |

use crate::template::MAX_TEMPLATE_BYTES;

/// The largest input value, in bytes: trigger inputs, attachment defaults and template
/// defaults alike.
pub const MAX_INPUT_VALUE_BYTES: usize = 64 * 1024;

/// The most inputs a template may declare, a trigger may give, or an attachment may set.
pub const MAX_INPUTS: usize = 100;

/// The most YAML nodes (scalars, sequences, mappings, keys included) a template may hold once
/// its aliases are expanded: one per byte of the largest template.
pub const MAX_YAML_NODES: usize = MAX_TEMPLATE_BYTES;

/// The most bytes of scalar text a template may hold once its aliases are expanded.
pub const MAX_YAML_SCALAR_BYTES: usize = 4 * MAX_TEMPLATE_BYTES;

/// Aliases may make a document at most this many times (plus [`YAML_SLACK`]) the nodes and
/// scalar bytes its source could hold without them.
pub const YAML_EXPANSION_FACTOR: usize = 4;

/// Headroom on top of [`YAML_EXPANSION_FACTOR`], so small documents may use anchors freely.
pub const YAML_SLACK: usize = 4096;

/// The most bytes one job may hold after its inputs are substituted: its name, image,
/// script lines, and env keys and values.
pub const MAX_JOB_EXPANDED_BYTES: usize = 1024 * 1024;

/// The most bytes all the jobs of one run may hold after their inputs are substituted.
pub const MAX_RUN_EXPANDED_BYTES: usize = 16 * 1024 * 1024;

/// The most jobs one run may have.
pub const MAX_RUN_JOBS: usize = 1000;

/// The most templates one repo may have attached.
pub const MAX_ATTACHED_TEMPLATES: usize = 100;

/// The node cap for a YAML document of `source_len` bytes.
pub fn yaml_node_cap(source_len: usize) -> usize {
    MAX_YAML_NODES.min(
        source_len
            .saturating_mul(YAML_EXPANSION_FACTOR)
            .saturating_add(YAML_SLACK),
    )
}

/// The scalar-bytes cap for a YAML document of `source_len` bytes.
pub fn yaml_scalar_cap(source_len: usize) -> usize {
    MAX_YAML_SCALAR_BYTES.min(
        source_len
            .saturating_mul(YAML_EXPANSION_FACTOR)
            .saturating_add(YAML_SLACK),
    )
}

/// Which cap was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`MAX_INPUT_VALUE_BYTES`].
    InputValueBytes,
    /// [`MAX_INPUTS`].
    Inputs,
    /// [`yaml_node_cap`].
    YamlNodes,
    /// [`yaml_scalar_cap`].
    YamlScalarBytes,
    /// [`MAX_JOB_EXPANDED_BYTES`].
    JobExpandedBytes,
    /// [`MAX_RUN_EXPANDED_BYTES`].
    RunExpandedBytes,
    /// [`MAX_RUN_JOBS`].
    RunJobs,
    /// [`MAX_ATTACHED_TEMPLATES`].
    AttachedTemplates,
}

impl Limit {
    /// A stable snake_case name, shown in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::InputValueBytes => "input_value_bytes",
            Limit::Inputs => "inputs",
            Limit::YamlNodes => "yaml_nodes",
            Limit::YamlScalarBytes => "yaml_scalar_bytes",
            Limit::JobExpandedBytes => "job_expanded_bytes",
            Limit::RunExpandedBytes => "run_expanded_bytes",
            Limit::RunJobs => "run_jobs",
            Limit::AttachedTemplates => "attached_templates",
        }
    }
}

/// A cap was hit; the message says what, which limit, and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (limit {}: {max})", .limit.as_str())]
pub struct LimitExceeded {
    /// Which cap.
    pub limit: Limit,
    /// Its value.
    pub max: usize,
    /// What went over it, e.g. `input "x" is 70000 bytes, more than 65536`.
    pub message: String,
}

impl LimitExceeded {
    /// `limit` (of value `max`) was exceeded as `message` says.
    pub fn new(limit: Limit, max: usize, message: impl Into<String>) -> Self {
        Self {
            limit,
            max,
            message: message.into(),
        }
    }
}

/// Checks a set of input values (a trigger's or an attachment's): at most [`MAX_INPUTS`] of
/// them, each at most [`MAX_INPUT_VALUE_BYTES`].
pub fn check_inputs<'a>(
    inputs: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), LimitExceeded> {
    if inputs.len() > MAX_INPUTS {
        return Err(LimitExceeded::new(
            Limit::Inputs,
            MAX_INPUTS,
            format!("{} inputs were given, more than {MAX_INPUTS}", inputs.len()),
        ));
    }
    for (name, value) in inputs {
        check_input_value(name, value)?;
    }
    Ok(())
}

/// Checks one input value against [`MAX_INPUT_VALUE_BYTES`].
pub fn check_input_value(name: &str, value: &str) -> Result<(), LimitExceeded> {
    if value.len() > MAX_INPUT_VALUE_BYTES {
        return Err(LimitExceeded::new(
            Limit::InputValueBytes,
            MAX_INPUT_VALUE_BYTES,
            format!(
                "input {name:?} is {} bytes, more than {MAX_INPUT_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{
        Limit, MAX_INPUT_VALUE_BYTES, MAX_INPUTS, MAX_YAML_NODES, check_inputs, yaml_node_cap,
        yaml_scalar_cap,
    };
    use std::collections::BTreeMap;

    #[test]
    fn caps_grow_with_the_source_up_to_the_absolute_cap() {
        assert_eq!(yaml_node_cap(0), 4096);
        assert_eq!(yaml_node_cap(1000), 8096);
        assert_eq!(yaml_node_cap(usize::MAX), MAX_YAML_NODES);
        assert_eq!(yaml_scalar_cap(1000), 8096);
        assert_eq!(yaml_scalar_cap(usize::MAX), 2 * 1024 * 1024);
    }

    #[test]
    fn inputs_are_counted_and_measured() {
        let mut m: BTreeMap<String, String> = (0..MAX_INPUTS)
            .map(|i| (format!("i{i}"), "v".to_owned()))
            .collect();
        check_inputs(m.iter()).unwrap();
        m.insert("one-more".into(), "v".into());
        let e = check_inputs(m.iter()).unwrap_err();
        assert_eq!(e.limit, Limit::Inputs);
        assert_eq!(
            e.to_string(),
            "101 inputs were given, more than 100 (limit inputs: 100)"
        );
        let m = BTreeMap::from([("big".to_owned(), "x".repeat(MAX_INPUT_VALUE_BYTES))]);
        check_inputs(m.iter()).unwrap();
        let m = BTreeMap::from([("big".to_owned(), "x".repeat(MAX_INPUT_VALUE_BYTES + 1))]);
        let e = check_inputs(m.iter()).unwrap_err();
        assert_eq!(e.limit, Limit::InputValueBytes);
        assert_eq!(
            e.to_string(),
            "input \"big\" is 65537 bytes, more than 65536 (limit input_value_bytes: 65536)"
        );
    }
}
