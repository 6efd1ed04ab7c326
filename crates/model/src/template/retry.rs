//! [`RetryPolicy`] and its two YAML forms (`retry: N` and `retry: {max, when, exit_codes}`).

use crate::names::quoted;
use crate::status::ErrorClass;
use crate::template::parse::Builder;
use crate::template::raw::RawRetry;
use serde::{Deserialize, Serialize};

/// The largest `retry` count.
pub const MAX_RETRIES: u32 = 10;

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
        // A service slow to start on a busy machine is worth another try, as a timeout is.
        ErrorClass::ServiceFailed,
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

impl Builder {
    pub(super) fn retry(&mut self, p: &str, raw: RawRetry) -> RetryPolicy {
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
}

fn retryable_list() -> String {
    RetryPolicy::RETRYABLE
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
