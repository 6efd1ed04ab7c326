//! A secret's value on the wire between pipeline-svc and the runner (SPEC §10): held in a
//! [`secrecy::SecretString`] (zeroed on drop), printed by `Debug` as `[REDACTED]`, and exposed
//! only where it is used: serialized into the one assignment that names it, put into the job's
//! environment, and matched by the runner's masking.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value; `Debug` never shows it.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    /// The value itself: only to hand it to the job, or to mask it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretValue {}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::SecretValue;

    #[test]
    fn debug_prints_no_value_and_serde_round_trips() {
        let v = SecretValue::new("hunter2-hunter2".into());
        assert_eq!(format!("{v:?}"), "[REDACTED]");
        assert!(!format!("{:?}", Some(&v)).contains("hunter2"));
        let json = serde_json::to_string(&v).expect("serialize");
        assert_eq!(json, "\"hunter2-hunter2\"");
        let back: SecretValue = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, v);
    }
}
