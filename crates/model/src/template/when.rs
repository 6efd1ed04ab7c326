//! [`When`]: when a job runs.

use serde::{Deserialize, Serialize};

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
