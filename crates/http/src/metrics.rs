//! A tiny Prometheus text-format registry: named counters, gauges and histograms held in
//! atomics.
//!
//! The services need a handful of numbers (requests, jobs, log bytes); a full metrics stack
//! would cost more start-up time and memory than it gives here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Cheap to clone; all clones share the same values.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    counters: RwLock<BTreeMap<(String, String), Arc<AtomicU64>>>,
    gauges: RwLock<BTreeMap<String, Arc<AtomicI64>>>,
    histograms: RwLock<BTreeMap<(String, String), Arc<Histogram>>>,
    help: RwLock<BTreeMap<String, String>>,
}

/// The upper bounds (seconds) of every histogram's buckets: from a fast claim (5 ms) to a
/// long job (an hour), roughly ×2.5 apart.
pub const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Most label sets one histogram keeps; observations of further ones are counted under
/// [`OTHER`], so label values that come from users (a job's `runs_on`) cannot grow the
/// registry without bound.
pub const MAX_LABEL_SETS: usize = 64;

/// The label set observations beyond [`MAX_LABEL_SETS`] are counted under.
pub const OTHER: &str = "overflow=\"true\"";

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`BUCKETS`], then the `+Inf` one.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    /// The sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, secs: f64) {
        let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((secs * 1e6).min(u64::MAX as f64) as u64, Ordering::Relaxed);
    }
}

/// A Prometheus label value: `\`, `"` and newlines escaped, so any text stays one value.
pub fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Metrics {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the help text printed for a metric.
    pub fn describe(&self, name: &str, help: &str) {
        if let Ok(mut h) = self.inner.help.write() {
            h.insert(name.to_owned(), help.to_owned());
        }
    }

    /// Adds `by` to the counter `name` with the given label set (`""` or `key="value",…`).
    pub fn inc_by(&self, name: &str, labels: &str, by: u64) {
        let key = (name.to_owned(), labels.to_owned());
        if let Ok(map) = self.inner.counters.read()
            && let Some(c) = map.get(&key)
        {
            c.fetch_add(by, Ordering::Relaxed);
            return;
        }
        if let Ok(mut map) = self.inner.counters.write() {
            map.entry(key).or_default().fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &str, labels: &str) {
        self.inc_by(name, labels, 1);
    }

    /// Adds `delta` (may be negative) to the gauge `name`.
    pub fn gauge_add(&self, name: &str, delta: i64) {
        if let Ok(map) = self.inner.gauges.read()
            && let Some(g) = map.get(name)
        {
            g.fetch_add(delta, Ordering::Relaxed);
            return;
        }
        if let Ok(mut map) = self.inner.gauges.write() {
            map.entry(name.to_owned())
                .or_default()
                .fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Sets the gauge `name`.
    pub fn gauge_set(&self, name: &str, value: i64) {
        if let Ok(mut map) = self.inner.gauges.write() {
            map.entry(name.to_owned())
                .or_default()
                .store(value, Ordering::Relaxed);
        }
    }

    /// Records `secs` in the histogram `name` with the given label set (`""` or
    /// `key="value",…`, values escaped with [`label_value`]).
    pub fn observe(&self, name: &str, labels: &str, secs: f64) {
        let key = (name.to_owned(), labels.to_owned());
        if let Ok(map) = self.inner.histograms.read()
            && let Some(h) = map.get(&key)
        {
            h.observe(secs);
            return;
        }
        if let Ok(mut map) = self.inner.histograms.write() {
            let sets = map.keys().filter(|(n, _)| n == name).count();
            let key = if sets >= MAX_LABEL_SETS && !map.contains_key(&key) {
                (name.to_owned(), OTHER.to_owned())
            } else {
                key
            };
            map.entry(key).or_default().observe(secs);
        }
    }

    /// Renders everything in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let help = self
            .inner
            .help
            .read()
            .map(|h| h.clone())
            .unwrap_or_default();
        let mut last = String::new();
        if let Ok(map) = self.inner.counters.read() {
            for ((name, labels), v) in map.iter() {
                if *name != last {
                    if let Some(h) = help.get(name) {
                        let _ = writeln!(out, "# HELP {name} {h}");
                    }
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last.clone_from(name);
                }
                let v = v.load(Ordering::Relaxed);
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        if let Ok(map) = self.inner.gauges.read() {
            for (name, v) in map.iter() {
                if let Some(h) = help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {h}");
                }
                let _ = writeln!(out, "# TYPE {name} gauge");
                let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
            }
        }
        if let Ok(map) = self.inner.histograms.read() {
            let mut last = String::new();
            for ((name, labels), h) in map.iter() {
                if *name != last {
                    if let Some(text) = help.get(name) {
                        let _ = writeln!(out, "# HELP {name} {text}");
                    }
                    let _ = writeln!(out, "# TYPE {name} histogram");
                    last.clone_from(name);
                }
                let sep = if labels.is_empty() { "" } else { "," };
                let mut cumulative = 0;
                for (i, bound) in BUCKETS
                    .iter()
                    .map(|b| b.to_string())
                    .chain(std::iter::once("+Inf".to_owned()))
                    .enumerate()
                {
                    cumulative += h.buckets[i].load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
                    );
                }
                let braces = if labels.is_empty() {
                    String::new()
                } else {
                    format!("{{{labels}}}")
                };
                let sum = h.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "{name}_sum{braces} {sum}");
                let _ = writeln!(
                    out,
                    "{name}_count{braces} {}",
                    h.count.load(Ordering::Relaxed)
                );
            }
        }
        out
    }

    /// An axum handler body: the rendered metrics with the Prometheus content type.
    pub fn response(&self) -> axum::response::Response {
        text_response(self.render())
    }
}

/// `text` (Prometheus exposition format) as a response with its content type.
pub fn text_response(text: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Counts every HTTP response by status class; install with `axum::middleware::from_fn_with_state`.
pub async fn count_requests(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let resp = next.run(req).await;
    let class = match resp.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics.inc("http_responses_total", &format!("class=\"{class}\""));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.describe("jobs_total", "Jobs finished.");
        m.inc("jobs_total", "status=\"success\"");
        m.inc_by("jobs_total", "status=\"success\"", 2);
        m.gauge_add("running", 3);
        m.gauge_add("running", -1);
        let text = m.render();
        assert!(text.contains("# HELP jobs_total Jobs finished."), "{text}");
        assert!(text.contains("jobs_total{status=\"success\"} 3"), "{text}");
        assert!(text.contains("running 2"), "{text}");
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::new();
        m.describe("wait_seconds", "Waits.");
        m.observe("wait_seconds", "zone=\"a\"", 0.003);
        m.observe("wait_seconds", "zone=\"a\"", 0.2);
        m.observe("wait_seconds", "zone=\"a\"", 7200.0);
        let text = m.render();
        assert!(text.contains("# TYPE wait_seconds histogram"), "{text}");
        assert!(
            text.contains("wait_seconds_bucket{zone=\"a\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wait_seconds_bucket{zone=\"a\",le=\"0.25\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wait_seconds_bucket{zone=\"a\",le=\"3600\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("wait_seconds_bucket{zone=\"a\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("wait_seconds_count{zone=\"a\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("wait_seconds_sum{zone=\"a\"} 7200.203\n"),
            "{text}"
        );
    }

    #[test]
    fn label_sets_from_users_are_bounded_and_escaped() {
        let m = Metrics::new();
        for i in 0..(MAX_LABEL_SETS + 10) {
            m.observe("h", &format!("set=\"{i}\""), 1.0);
        }
        let text = m.render();
        let sets = text.lines().filter(|l| l.starts_with("h_count")).count();
        assert_eq!(sets, MAX_LABEL_SETS + 1, "{text}");
        assert!(text.contains("h_count{overflow=\"true\"} 10\n"), "{text}");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
