//! Arbitrary YAML bytes and input values → `parse_template` + `resolve_inputs` +
//! `expand_job` under the caps: never panics, and never yields more than the caps allow.
//!
//! The input is split at NUL bytes: the first part is the template, each later part an input
//! value, given (as the trigger would) to the template's declared inputs in name order. The
//! run budget is small, so the caps are reached often.

#![no_main]

use gitweave_model::expand::{ExpandError, RunBudget, expand_job, resolve_inputs};
use gitweave_model::limits::{self, MAX_INPUT_VALUE_BYTES};
use gitweave_model::template::{MAX_TEMPLATE_BYTES, parse_template};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

const JOB_CAP: usize = 256;
const RUN_CAP: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let Some(yaml) = parts.next().and_then(|y| std::str::from_utf8(y).ok()) else {
        return;
    };
    let template = match parse_template(yaml) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.message.is_empty());
            if let Some(l) = &e.limit {
                assert!(l.to_string().contains(l.limit.as_str()));
            }
            return;
        }
    };
    // What the parser let through is bounded by the source.
    assert!(yaml.len() <= MAX_TEMPLATE_BYTES);
    let text: usize = template
        .jobs
        .iter()
        .map(|j| j.script.iter().map(String::len).sum::<usize>())
        .sum();
    assert!(text <= limits::yaml_scalar_cap(yaml.len()));

    let trigger: BTreeMap<String, String> = template
        .inputs
        .keys()
        .zip(parts)
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let values = match resolve_inputs(&template, &BTreeMap::new(), &trigger) {
        Ok(v) => v,
        Err(ExpandError::Limit(_) | ExpandError::MissingInput { .. }) => return,
        Err(e) => panic!("resolve: {e}"),
    };
    assert!(values.values().all(|v| v.len() <= MAX_INPUT_VALUE_BYTES));

    let mut run = RunBudget::with_caps(JOB_CAP, RUN_CAP);
    for job in &template.jobs {
        let before = run.used();
        match expand_job(&template, job, &values, &mut run) {
            Ok(j) => {
                let size = j.name.as_str().len()
                    + j.image.as_ref().map_or(0, String::len)
                    + j.script.iter().map(String::len).sum::<usize>()
                    + j.env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
                assert!(size <= JOB_CAP, "job of {size} bytes");
                assert_eq!(run.used(), before + size);
            }
            Err(ExpandError::Limit(_)) => assert_eq!(run.used(), before),
            Err(ExpandError::InvalidImage { .. } | ExpandError::MissingInput { .. }) => {}
            Err(e) => panic!("expand: {e}"),
        }
        assert!(run.used() <= RUN_CAP);
    }
});
