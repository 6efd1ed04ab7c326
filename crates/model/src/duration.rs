//! Job timeouts written as `45s`, `10m`, `2h`, `1h30m` or a bare number of seconds, and
//! artifact lifetimes (`expire_in`), which also take days (`7d`).
//!
//! Only whole seconds exist here: a timeout finer than a second is not meaningful for a CI
//! job, and keeping to whole seconds makes [`format_duration`] an exact inverse of
//! [`parse_duration`].

use std::time::Duration;

/// The timeout of a job that does not set one: 60 minutes.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The longest timeout a job may set: 24 hours.
pub const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a duration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text was empty.
    #[error("duration must not be empty")]
    Empty,
    /// The text is not a duration.
    #[error(
        "invalid duration {input:?}: {reason} (use whole numbers with units h, m, s in that order, e.g. 45s, 10m, 1h30m, or a number of seconds)"
    )]
    Malformed {
        /// The rejected text.
        input: String,
        /// What exactly is wrong with it.
        reason: String,
    },
    /// The duration is zero.
    #[error("duration {input:?} must be greater than zero")]
    Zero {
        /// The rejected text.
        input: String,
    },
    /// The duration exceeds [`MAX_JOB_TIMEOUT`].
    #[error("duration {input:?} exceeds the maximum of 24h")]
    TooLong {
        /// The rejected text.
        input: String,
    },
}

/// Parses a job timeout: `45s`, `10m`, `2h`, `1h30m`, `1h30m15s`, or a bare integer
/// meaning seconds.
///
/// Units must appear in descending order (`h`, `m`, `s`), each at most once; the result
/// must be greater than zero and at most [`MAX_JOB_TIMEOUT`]. Signs, fractions, spaces
/// and other units are rejected.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    const UNITS: [(u8, u64); 3] = [(b'h', 3600), (b'm', 60), (b's', 1)];
    parse_units(s, &UNITS, MAX_JOB_TIMEOUT.as_secs()).map_err(|e| match e {
        UnitsError::Empty => DurationError::Empty,
        UnitsError::Malformed(reason) => DurationError::Malformed {
            input: s.to_owned(),
            reason,
        },
        UnitsError::Zero => DurationError::Zero {
            input: s.to_owned(),
        },
        UnitsError::TooLong => DurationError::TooLong {
            input: s.to_owned(),
        },
    })
}

/// How long an artifact is kept when its job says no `expire_in` (SPEC §11): 30 days.
pub const DEFAULT_EXPIRE_IN: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest `expire_in` accepted: 365 days.
pub const MAX_EXPIRE_IN: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses an artifact's `expire_in`: the units of a timeout plus `d` (`7d`, `1d12h`, `90m`,
/// a bare number of seconds), greater than zero and at most [`MAX_EXPIRE_IN`]. The error is a
/// sentence for people.
pub fn parse_expire_in(s: &str) -> Result<Duration, String> {
    const UNITS: [(u8, u64); 4] = [(b'd', 86_400), (b'h', 3600), (b'm', 60), (b's', 1)];
    parse_units(s, &UNITS, MAX_EXPIRE_IN.as_secs()).map_err(|e| match e {
        UnitsError::Empty => "duration must not be empty".to_owned(),
        UnitsError::Malformed(reason) => format!(
            "invalid duration {s:?}: {reason} (use whole numbers with units d, h, m, s in that order, e.g. 7d, 12h, 1d12h)"
        ),
        UnitsError::Zero => format!("duration {s:?} must be greater than zero"),
        UnitsError::TooLong => format!("duration {s:?} exceeds the maximum of 365d"),
    })
}

/// Why [`parse_units`] refused its input.
enum UnitsError {
    Empty,
    Malformed(String),
    Zero,
    TooLong,
}

/// Parses whole numbers with `units` (descending, each at most once) or a bare number of
/// seconds, into at most `max` seconds.
fn parse_units(s: &str, units: &[(u8, u64)], max: u64) -> Result<Duration, UnitsError> {
    if s.is_empty() {
        return Err(UnitsError::Empty);
    }
    let malformed = |reason: &str| UnitsError::Malformed(reason.to_owned());
    let mut total: u64 = 0;
    // Index into `units` of the last unit seen, so each later unit must be smaller.
    let mut next_unit = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0usize;
    let mut saw_unit = false;
    while i < bytes.len() {
        let start = i;
        let mut value: u64 = 0;
        while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
            // Saturating: anything this large is over the maximum anyway, and the
            // comparison below reports it as too long rather than overflowing.
            value = value.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            i += 1;
        }
        if i == start {
            return Err(malformed("expected a number"));
        }
        let Some(&unit) = bytes.get(i) else {
            if saw_unit {
                return Err(malformed("the last number has no unit"));
            }
            // A bare integer: seconds.
            total = value;
            break;
        };
        let Some(pos) = units.iter().position(|(u, _)| *u == unit) else {
            return Err(malformed(&format!(
                "unknown unit {:?}",
                s[i..].chars().next().unwrap_or('?')
            )));
        };
        if pos < next_unit {
            let order: Vec<String> = units
                .iter()
                .map(|(u, _)| char::from(*u).to_string())
                .collect();
            return Err(malformed(&format!(
                "units must appear once each, in the order {}",
                order.join(", ")
            )));
        }
        next_unit = pos + 1;
        saw_unit = true;
        total = total.saturating_add(value.saturating_mul(units[pos].1));
        i += 1;
    }
    if total == 0 {
        return Err(UnitsError::Zero);
    }
    if total > max {
        return Err(UnitsError::TooLong);
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration canonically (`1h30m`, `45s`, `2h`, `1h0m5s` is written `1h5s`),
/// so that `parse_duration(&format_duration(d)) == Ok(d)` for every valid timeout.
///
/// Sub-second parts are dropped; zero formats as `0s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 {
            out.push_str(&n.to_string());
            out.push(unit);
        }
    }
    out
}

/// Serde helpers that store a [`Duration`] as whole seconds (`u64`), the form used in
/// stored JSON: `#[serde(with = "crate::duration::serde_secs")]`.
pub mod serde_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes the duration as whole seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    /// Reads a duration written as whole seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Result<Duration, DurationError> {
        Ok(Duration::from_secs(n))
    }

    #[test]
    fn accepts_units_compounds_and_bare_seconds() {
        assert_eq!(parse_duration("45s"), secs(45));
        assert_eq!(parse_duration("10m"), secs(600));
        assert_eq!(parse_duration("2h"), secs(7200));
        assert_eq!(parse_duration("1h30m"), secs(5400));
        assert_eq!(parse_duration("1h30m15s"), secs(5415));
        assert_eq!(parse_duration("1h15s"), secs(3615));
        assert_eq!(parse_duration("90m"), secs(5400));
        assert_eq!(parse_duration("0h5m"), secs(300));
        assert_eq!(parse_duration("600"), secs(600));
        assert_eq!(parse_duration("24h"), Ok(MAX_JOB_TIMEOUT));
        assert_eq!(parse_duration("86400"), Ok(MAX_JOB_TIMEOUT));
    }

    fn err(s: &str) -> String {
        parse_duration(s).unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_durations_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(err("0").contains("greater than zero"));
        assert!(err("0s").contains("greater than zero"));
        assert!(err("0h0m").contains("greater than zero"));
        assert!(err("1.5h").contains("unknown unit '.'"), "{}", err("1.5h"));
        assert!(err("-5m").contains("expected a number"));
        assert!(err("+5m").contains("expected a number"));
        assert!(err("5d").contains("unknown unit 'd'"));
        assert!(err("5M").contains("unknown unit 'M'"));
        assert!(err("h").contains("expected a number"));
        assert!(err("30m1h").contains("order"));
        assert!(err("1m1m").contains("order"));
        assert!(err("1h30").contains("no unit"));
        assert!(err(" 5m").contains("expected a number"));
        assert!(err("5m ").contains("expected a number"));
        assert!(err("5 m").contains("unknown unit ' '"));
        assert!(err("25h").contains("exceeds the maximum of 24h"));
        assert!(err("24h1s").contains("exceeds"));
        assert!(err("86401").contains("exceeds"));
        assert!(err("99999999999999999999999999h").contains("exceeds"));
        assert!(err("1é").contains("unknown unit 'é'"));
        assert!(err("1.5h").contains("\"1.5h\""));
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::from_secs(45)), "45s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(3605)), "1h5s");
        assert_eq!(format_duration(DEFAULT_JOB_TIMEOUT), "1h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s");
    }

    #[test]
    fn constants() {
        assert_eq!(DEFAULT_JOB_TIMEOUT, Duration::from_secs(3600));
        assert_eq!(MAX_JOB_TIMEOUT, Duration::from_secs(86400));
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Wrap {
        #[serde(with = "serde_secs")]
        t: Duration,
    }

    #[test]
    fn serde_secs_round_trips() {
        let w = Wrap {
            t: Duration::from_secs(600),
        };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(json, r#"{"t":600}"#);
        assert_eq!(serde_json::from_str::<Wrap>(&json).unwrap(), w);
    }

    #[test]
    fn expire_in_takes_days_and_the_timeout_units() {
        assert_eq!(parse_expire_in("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            parse_expire_in("1d12h"),
            Ok(Duration::from_secs(86_400 + 12 * 3600))
        );
        assert_eq!(parse_expire_in("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_expire_in("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_expire_in("365d"), Ok(MAX_EXPIRE_IN));
        for bad in ["", "0d", "366d", "1w", "12h1d", "-1d", "1.5d", "d"] {
            let e = parse_expire_in(bad).expect_err(bad);
            assert!(e.contains("duration"), "{bad}: {e}");
        }
        assert!(
            parse_expire_in("12h1d")
                .expect_err("order")
                .contains("in the order d, h, m, s")
        );
        // A timeout still refuses days.
        assert!(parse_duration("1d").is_err());
    }

    proptest! {
        #[test]
        fn expire_in_never_panics_and_stays_in_range(s in "[0-9dhms.+ -]{0,12}|\\PC{0,12}") {
            if let Ok(d) = parse_expire_in(&s) {
                prop_assert!(d > Duration::ZERO && d <= MAX_EXPIRE_IN);
            }
        }

        #[test]
        fn format_then_parse_round_trips(n in 1u64..=86_400) {
            let d = Duration::from_secs(n);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            prop_assert_eq!(parse_duration(&n.to_string()), Ok(d));
        }

        #[test]
        fn parse_never_panics_and_stays_in_range(s in "[0-9hms.+ -]{0,12}|\\PC{0,12}") {
            if let Ok(d) = parse_duration(&s) {
                prop_assert!(d > Duration::ZERO && d <= MAX_JOB_TIMEOUT);
            }
        }
    }
}
