//! Per-client request rate limits: a token bucket per client IP address.
//!
//! Each client may send `burst` requests at once and `rate` requests per second after that.
//! A refused request is answered 429 with `Retry-After`, the time until its bucket holds a
//! token again. The bucket is kept as the generic cell rate algorithm keeps it: one instant per
//! client, its *theoretical arrival time*, in whole nanoseconds (no float drift). Buckets that
//! have filled up again carry no state worth keeping and are dropped when the map grows, so
//! memory stays bounded by the clients active within the last `burst / rate` seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many buckets the map may hold before full ones are first swept out.
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug)]
struct Buckets {
    /// Per client: when its bucket is full again (at or before now: it is full).
    full_at: HashMap<IpAddr, Instant>,
    /// The size at which the next sweep happens: twice what the last one left, so sweeps
    /// cost O(1) per request amortized even when every client is busy.
    sweep_above: usize,
}

/// The limits of every client, shared by all requests.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u32,
    /// The time one request's token takes to come back: 1 / rate.
    interval: Duration,
    /// How far ahead of now a client's arrival time may run: (burst − 1) intervals.
    tolerance: Duration,
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    /// `rate` requests per second per client after a burst of `burst`; `None` when `rate` is
    /// 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| {
            // Rounded up, so that many requests never add up to more than the rate.
            let interval = Duration::from_nanos(1_000_000_000_u64.div_ceil(u64::from(rate)));
            Self {
                rate,
                interval,
                tolerance: interval * (burst.max(1) - 1),
                buckets: Mutex::new(Buckets {
                    full_at: HashMap::new(),
                    sweep_above: SWEEP_ABOVE,
                }),
            }
        })
    }

    /// Requests per second per client.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes a token for a request from `client` at `now`; when none is left, how long until
    /// there is one.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let b = &mut *buckets;
        if b.full_at.len() >= b.sweep_above && !b.full_at.contains_key(&client) {
            b.full_at.retain(|_, at| *at > now);
            b.sweep_above = SWEEP_ABOVE.max(2 * b.full_at.len());
        }
        let at = b.full_at.entry(client).or_insert(now);
        let arrival = (*at).max(now);
        let ahead = arrival - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        *at = arrival + self.interval;
        Ok(())
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.buckets
            .lock()
            .map(|b| b.full_at.len())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn zero_rate_means_no_limit() {
        assert!(RateLimiter::new(0, 10).is_none());
    }

    #[test]
    fn a_burst_then_the_rate_and_a_retry_after_until_the_next_token() {
        let l = RateLimiter::new(2, 3).expect("limited");
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip(1), t), Ok(()));
        }
        let wait = l.check(ip(1), t).expect_err("the burst is spent");
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(
            l.check(ip(2), t),
            Ok(()),
            "another client has its own bucket"
        );
        assert!(l.check(ip(1), t + Duration::from_millis(499)).is_err());
        assert_eq!(l.check(ip(1), t + Duration::from_millis(500)), Ok(()));
        // A long pause refills to the burst, not beyond.
        let later = t + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check(ip(1), later), Ok(()));
        }
        assert!(l.check(ip(1), later).is_err());
    }

    #[test]
    fn full_buckets_are_swept_when_the_map_grows() {
        let l = RateLimiter::new(1000, 1).expect("limited");
        let t = Instant::now();
        for n in 0..SWEEP_ABOVE as u32 {
            l.check(ip(n), t).expect("first request");
        }
        assert_eq!(l.clients(), SWEEP_ABOVE);
        // A second later every bucket has refilled: the next new client sweeps them all.
        l.check(ip(u32::MAX >> 8), t + Duration::from_secs(1))
            .expect("first request");
        assert_eq!(l.clients(), 1);
    }

    #[test]
    fn busy_clients_are_kept_and_sweeps_wait_for_the_map_to_double() {
        let l = RateLimiter::new(1, 5).expect("limited");
        let t = Instant::now();
        for n in 0..SWEEP_ABOVE as u32 + 10 {
            l.check(ip(n), t).expect("first request");
        }
        // Nobody's bucket is full again yet: all are kept, and still limited.
        assert_eq!(l.clients(), SWEEP_ABOVE + 10);
        for _ in 0..4 {
            l.check(ip(3), t).expect("the rest of the burst");
        }
        assert!(
            l.check(ip(3), t).is_err(),
            "client 3 keeps its spent bucket"
        );
    }

    proptest! {
        /// Whatever the request times, a client never gets more than `burst + rate·T`
        /// requests through in any span of T seconds, and a refusal's `Retry-After` is when
        /// the next request would be let through.
        #[test]
        fn never_more_than_the_burst_plus_the_rate(
            rate in 1u32..50,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..200, 1..300),
        ) {
            let l = RateLimiter::new(rate, burst).expect("limited");
            let start = Instant::now();
            let mut now = start;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                match l.check(ip(7), now) {
                    Ok(()) => admitted.push(now),
                    Err(wait) => {
                        prop_assert!(wait > Duration::ZERO);
                        prop_assert!(wait <= Duration::from_nanos(1_000_000_000_u64.div_ceil(u64::from(rate))));
                        prop_assert!(l.check(ip(7), now + wait - Duration::from_nanos(1)).is_err());
                        prop_assert!(l.check(ip(7), now + wait).is_ok());
                        admitted.push(now + wait);
                        now += wait;
                    }
                }
            }
            for (i, first) in admitted.iter().enumerate() {
                for (j, last) in admitted.iter().enumerate().skip(i) {
                    let span = last.duration_since(*first).as_secs_f64();
                    let allowed = f64::from(burst) + span * f64::from(rate);
                    prop_assert!(
                        (j - i + 1) as f64 <= allowed + 1e-6,
                        "{} requests in {span} s (burst {burst}, rate {rate})", j - i + 1
                    );
                }
            }
        }
    }
}
