//! The `inputs:` section: names, `required`, `default` and the input caps.

use crate::limits::{self, LimitExceeded};
use crate::names::InputName;
use crate::template::InputSpec;
use crate::template::parse::{Builder, invalid};
use crate::template::raw::{RawInput, UniqueMap};
use std::collections::BTreeMap;

impl Builder {
    /// Checks the declared inputs; a bad name is reported and left out.
    pub(super) fn inputs(
        &mut self,
        raw: Option<UniqueMap<Option<RawInput>>>,
    ) -> BTreeMap<InputName, InputSpec> {
        let mut inputs = BTreeMap::new();
        let raw_inputs = raw.map(|m| m.0).unwrap_or_default();
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
        inputs
    }
}
