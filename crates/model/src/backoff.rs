//! The delay before a failed job's next attempt (docs/DECISIONS.md, "Retry backoff"):
//! `base · 2^(attempt−1)`, scaled by a jitter of ±10 %, never more than a minute. Pure: the
//! caller draws the random number, so doubling, cap and jitter bounds are tested without a
//! clock or a random source.

use std::time::Duration;

/// The longest delay, jitter included.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The jitter's half-width: the delay is scaled by a factor in `[1 − JITTER, 1 + JITTER]`.
pub const JITTER: f64 = 0.1;

/// The delay without jitter: `base · 2^(attempt−1)`, at most [`MAX_DELAY`]. `attempt` is the
/// 1-based attempt that just failed; anything below 1 counts as 1.
pub fn nominal_delay(base: Duration, attempt: i32) -> Duration {
    // 2^31 takes any base of a millisecond or more past the cap; a larger shift overflows.
    let doublings = (attempt.clamp(1, 32) - 1) as u32;
    base.saturating_mul(1u32 << doublings).min(MAX_DELAY)
}

/// The delay before the attempt after `attempt`: [`nominal_delay`] scaled by
/// `1 + JITTER · (2·unit − 1)` and then capped at [`MAX_DELAY`]. `unit` is a uniform draw
/// from `[0, 1]` (values outside are clamped, NaN counts as the middle), so `0.5` gives the
/// nominal delay. The cap applies last, so no draw makes a delay longer than a minute.
pub fn retry_delay(base: Duration, attempt: i32, unit: f64) -> Duration {
    let unit = if unit.is_nan() {
        0.5
    } else {
        unit.clamp(0.0, 1.0)
    };
    let factor = 1.0 + JITTER * (2.0 * unit - 1.0);
    // The nominal delay is at most a minute, so the product cannot overflow.
    nominal_delay(base, attempt).mul_f64(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::{JITTER, MAX_DELAY, nominal_delay, retry_delay};
    use proptest::prelude::*;
    use std::time::Duration;

    const BASE: Duration = Duration::from_secs(2);

    #[test]
    fn doubles_from_the_base_up_to_a_minute() {
        let secs: Vec<u64> = (1..=8)
            .map(|a| retry_delay(BASE, a, 0.5).as_secs())
            .collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn jitter_spans_ten_percent_either_side() {
        let ms = |unit| retry_delay(BASE, 2, unit).as_millis();
        assert_eq!((ms(0.0), ms(0.5), ms(1.0)), (3_600, 4_000, 4_400));
    }

    #[test]
    fn the_cap_holds_with_the_largest_jitter() {
        assert_eq!(retry_delay(BASE, 6, 1.0), MAX_DELAY);
        assert_eq!(retry_delay(Duration::from_secs(59), 1, 1.0), MAX_DELAY);
        assert_eq!(retry_delay(BASE, 6, 0.0), MAX_DELAY.mul_f64(1.0 - JITTER));
    }

    #[test]
    fn attempts_below_one_count_as_the_first() {
        for a in [i32::MIN, -1, 0] {
            assert_eq!(retry_delay(BASE, a, 0.5), BASE);
        }
    }

    #[test]
    fn out_of_range_draws_are_clamped() {
        assert_eq!(retry_delay(BASE, 1, -3.0), retry_delay(BASE, 1, 0.0));
        assert_eq!(retry_delay(BASE, 1, 7.0), retry_delay(BASE, 1, 1.0));
        assert_eq!(retry_delay(BASE, 1, f64::NAN), BASE);
    }

    #[test]
    fn a_huge_base_or_attempt_does_not_overflow() {
        assert_eq!(retry_delay(Duration::MAX, i32::MAX, 1.0), MAX_DELAY);
        assert_eq!(nominal_delay(Duration::from_millis(1), 17), MAX_DELAY);
    }

    fn base() -> impl Strategy<Value = Duration> {
        (0u64..=120_000).prop_map(Duration::from_millis)
    }

    proptest! {
        #[test]
        fn within_the_jitter_bounds_and_the_cap(b in base(), a in -5i32..40, unit in 0.0f64..=1.0) {
            let nominal = nominal_delay(b, a);
            let d = retry_delay(b, a, unit);
            prop_assert!(d <= MAX_DELAY);
            // One microsecond of slack for the float rounding of `mul_f64`.
            let slack = Duration::from_micros(1);
            prop_assert!(d + slack >= nominal.mul_f64(1.0 - JITTER), "{d:?} below {nominal:?} − 10 %");
            prop_assert!(d <= nominal.mul_f64(1.0 + JITTER) + slack, "{d:?} above {nominal:?} + 10 %");
        }

        #[test]
        fn each_attempt_doubles_the_nominal_delay_until_the_cap(b in base(), a in 1i32..30) {
            let (this, next) = (nominal_delay(b, a), nominal_delay(b, a + 1));
            prop_assert_eq!(next, (this * 2).min(MAX_DELAY));
        }

        #[test]
        fn never_shorter_for_a_later_attempt_or_a_larger_draw(
            b in base(), a in 1i32..30, u in 0.0f64..=1.0, v in 0.0f64..=1.0,
        ) {
            prop_assert!(retry_delay(b, a + 1, u) >= retry_delay(b, a, u));
            let (lo, hi) = if u <= v { (u, v) } else { (v, u) };
            prop_assert!(retry_delay(b, a, hi) >= retry_delay(b, a, lo));
        }
    }
}
