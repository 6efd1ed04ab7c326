//! A job's resource limits (`resources: {memory: 512m, cpus: 1.5}`, SPEC §15), parsed once
//! into types that cannot hold a bad value.
//!
//! The same types parse the runner's `RUNNER_JOB_MEMORY` and `RUNNER_JOB_CPUS`, so a job's
//! request and the runner's maximum are compared as numbers, never as text. Units are
//! Docker's: memory in bytes with an optional binary suffix (`k`, `m`, `g`, `t`, also written
//! `kb`/`ki`/`kib` …, case-insensitive; `512m` is 512 MiB); CPUs as a decimal number of cores
//! with at most nine decimals (`1.5`, `0.25`), held as billionths (Docker's `NanoCpus`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The smallest memory limit Docker accepts (6 MiB); smaller is refused here, not at run time.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;
/// The largest memory limit written (1 PiB): beyond it a number is surely a typo.
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;
/// The most CPUs a job may ask for.
pub const MAX_CPUS: u64 = 1024;
const NANOS: u64 = 1_000_000_000;

/// A memory limit in bytes, between [`MIN_MEMORY_BYTES`] and [`MAX_MEMORY_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory(u64);

/// A CPU limit in billionths of a core (Docker's `NanoCpus`), above 0 and at most [`MAX_CPUS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpus(u64);

/// What a job asks for; each absent limit means "the runner's default".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit (the container is OOM killed past it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// CPU limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
}

impl Memory {
    /// The limit in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// From a number of bytes, when it is in range.
    pub fn from_bytes(bytes: u64) -> Result<Self, String> {
        if bytes < MIN_MEMORY_BYTES {
            return Err(format!(
                "memory {bytes} bytes is below the minimum of 6m (Docker's)"
            ));
        }
        if bytes > MAX_MEMORY_BYTES {
            return Err(format!("memory {bytes} bytes is more than 1p"));
        }
        Ok(Memory(bytes))
    }
}

impl FromStr for Memory {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "memory {s:?} is not a size: write a whole number of bytes with an optional unit k, m, g or t (e.g. 512m, 2g)"
            )
        };
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let (number, unit) = t.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let shift = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "ki" | "kib" => 10,
            "m" | "mb" | "mi" | "mib" => 20,
            "g" | "gb" | "gi" | "gib" => 30,
            "t" | "tb" | "ti" | "tib" => 40,
            _ => return Err(bad()),
        };
        let bytes = number
            .checked_mul(1u64 << shift)
            .filter(|b| *b <= MAX_MEMORY_BYTES)
            .ok_or_else(|| format!("memory {s:?} is more than 1p"))?;
        Memory::from_bytes(bytes).map_err(|_| format!("memory {s:?} is below the minimum of 6m"))
    }
}

impl fmt::Display for Memory {
    /// The largest unit that divides it: `512m`, `2g`, `1536k`, `7000001` (bytes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, "t"), (30, "g"), (20, "m"), (10, "k")] {
            if self.0.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Cpus {
    /// Billionths of a core (Docker's `NanoCpus`).
    pub fn nanos(self) -> u64 {
        self.0
    }
}

impl FromStr for Cpus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "cpus {s:?} is not a number of CPUs: write a decimal above 0 and at most {MAX_CPUS}, with at most 9 decimals (e.g. 1.5)"
            )
        };
        let t = s.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty())
            || !all_digits(whole)
            || !all_digits(frac)
            || frac.len() > 9
            || whole.len() > 4
        {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac_nanos: u64 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<9}");
            padded.parse().map_err(|_| bad())?
        };
        let nanos = whole * NANOS + frac_nanos;
        if nanos == 0 || nanos > MAX_CPUS * NANOS {
            return Err(bad());
        }
        Ok(Cpus(nanos))
    }
}

impl fmt::Display for Cpus {
    /// A plain decimal without trailing zeros: `1.5`, `2`, `0.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / NANOS, self.0 % NANOS);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{frac:09}");
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// Stored and sent as the text [`Display`](fmt::Display) writes, read back through
/// [`FromStr`], so a stored value is checked again whenever it is read.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(Memory);
serde_as_text!(Cpus);

/// Why a job cannot have what it asks for on this runner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the job asks for {what} {asked}, more than this runner's maximum of {max} ({setting})")]
pub struct OverLimit {
    /// `memory` or `cpus`.
    pub what: &'static str,
    /// What the job asked for.
    pub asked: String,
    /// The runner's maximum.
    pub max: String,
    /// The runner setting that holds the maximum.
    pub setting: &'static str,
}

impl Resources {
    /// The limits a job gets on a runner whose defaults and maxima are `runner`: what the job
    /// asks for where it asks, the runner's value elsewhere; asking for more than the runner's
    /// maximum is an error naming both values.
    pub fn within(self, runner: Resources) -> Result<Resources, OverLimit> {
        fn pick<T: Copy + Ord + fmt::Display>(
            asked: Option<T>,
            max: Option<T>,
            what: &'static str,
            setting: &'static str,
        ) -> Result<Option<T>, OverLimit> {
            match (asked, max) {
                (Some(a), Some(m)) if a > m => Err(OverLimit {
                    what,
                    asked: a.to_string(),
                    max: m.to_string(),
                    setting,
                }),
                (Some(a), _) => Ok(Some(a)),
                (None, m) => Ok(m),
            }
        }
        Ok(Resources {
            memory: pick(self.memory, runner.memory, "memory", "RUNNER_JOB_MEMORY")?,
            cpus: pick(self.cpus, runner.cpus, "cpus", "RUNNER_JOB_CPUS")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Cpus, MIN_MEMORY_BYTES, Memory, Resources};
    use proptest::prelude::*;

    fn mem(s: &str) -> Memory {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn memory_takes_docker_units() {
        assert_eq!(mem("512m").bytes(), 512 << 20);
        assert_eq!(mem("2g").bytes(), 2 << 30);
        assert_eq!(mem("2G").bytes(), 2 << 30);
        assert_eq!(mem("1536Mi").bytes(), 1536 << 20);
        assert_eq!(mem("8388608").bytes(), 8 << 20);
        assert_eq!(mem("32m").to_string(), "32m");
        assert_eq!(mem("1024m").to_string(), "1g");
        for bad in ["", "m", "1.5g", "-1m", "5m", "12x", "1 g", "99999999999t"] {
            assert!(bad.parse::<Memory>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn cpus_are_decimals() {
        let c = |s: &str| s.parse::<Cpus>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(c("1.5").nanos(), 1_500_000_000);
        assert_eq!(c("0.25").nanos(), 250_000_000);
        assert_eq!(c(".5").nanos(), 500_000_000);
        assert_eq!(c("2").to_string(), "2");
        assert_eq!(c("1.50").to_string(), "1.5");
        for bad in [
            "",
            ".",
            "0",
            "0.0",
            "-1",
            "1e3",
            "1.0000000001",
            "1025",
            "1,5",
        ] {
            assert!(bad.parse::<Cpus>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_job_may_ask_for_less_than_the_runner_never_more() {
        let runner = Resources {
            memory: Some(mem("1g")),
            cpus: "2".parse().ok(),
        };
        let less = Resources {
            memory: Some(mem("512m")),
            cpus: None,
        };
        assert_eq!(
            less.within(runner),
            Ok(Resources {
                memory: Some(mem("512m")),
                cpus: runner.cpus
            })
        );
        let more = Resources {
            memory: Some(mem("2g")),
            cpus: None,
        };
        let err = more.within(runner).expect_err("over the maximum");
        assert_eq!(
            err.to_string(),
            "the job asks for memory 2g, more than this runner's maximum of 1g (RUNNER_JOB_MEMORY)"
        );
        assert_eq!(more.within(Resources::default()), Ok(more));
        assert_eq!(Resources::default().within(runner), Ok(runner));
    }

    #[test]
    fn stored_json_is_the_written_text() {
        let r = Resources {
            memory: Some(mem("512m")),
            cpus: "1.5".parse().ok(),
        };
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(json, r#"{"memory":"512m","cpus":"1.5"}"#);
        assert_eq!(serde_json::from_str::<Resources>(&json).ok(), Some(r));
        assert_eq!(
            serde_json::from_str::<Resources>("{}").ok(),
            Some(Resources::default())
        );
    }

    #[test]
    fn a_template_job_may_say_resources() {
        let t = crate::template::parse_template(
            "jobs:\n  - { name: a, script: [x], resources: { memory: 512m, cpus: 1.5 } }\n  - { name: b, script: [x] }\n",
        )
        .expect("valid");
        assert_eq!(t.jobs[0].resources.memory, Some(mem("512m")));
        assert_eq!(t.jobs[0].resources.cpus, "1.5".parse().ok());
        assert_eq!(t.jobs[1].resources, Resources::default());
        let err = crate::template::parse_template(
            "jobs:\n  - { name: a, script: [x], resources: { memory: lots, cpus: 0 } }\n",
        )
        .expect_err("invalid");
        assert!(
            err.message
                .contains("jobs[0].resources.memory: memory \"lots\""),
            "{err:?}"
        );
        assert!(
            err.message.contains("jobs[0].resources.cpus: cpus \"0\""),
            "{err:?}"
        );
        let err = crate::template::parse_template(
            "jobs:\n  - { name: a, script: [x], resources: { disk: 1g } }\n",
        )
        .expect_err("unknown key");
        assert!(err.message.contains("disk"), "{err:?}");
    }

    proptest! {
        #[test]
        fn memory_round_trips(bytes in MIN_MEMORY_BYTES..(1u64 << 50)) {
            let m = Memory::from_bytes(bytes).expect("in range");
            prop_assert_eq!(m.to_string().parse::<Memory>(), Ok(m));
        }

        #[test]
        fn cpus_round_trip(nanos in 1u64..=1024 * 1_000_000_000) {
            let text = format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000);
            let c: Cpus = text.parse().expect("valid");
            prop_assert_eq!(c.nanos(), nanos);
            prop_assert_eq!(c.to_string().parse::<Cpus>(), Ok(c));
        }

        #[test]
        fn parsing_any_text_never_panics(s in ".{0,24}") {
            let _ = s.parse::<Memory>();
            let _ = s.parse::<Cpus>();
        }
    }
}
