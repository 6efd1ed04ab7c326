//! A tiny Prometheus text-format registry: named counters and gauges held in atomics.
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
    help: RwLock<BTreeMap<String, String>>,
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
        out
    }

    /// An axum handler body: the rendered metrics with the Prometheus content type.
    pub fn response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        (
            [(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            self.render(),
        )
            .into_response()
    }
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
}
