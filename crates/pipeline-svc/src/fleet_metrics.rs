//! The queue and the fleet on `/metrics` (issue 16, SPEC §13): queue depth by requirement
//! set, read from the database at scrape time (so every instance reports the same queue);
//! runners online, their slots and busy slots by label set, from what this instance knows
//! of the runners (as `GET /runners` shows them); and the label that groups the queue-wait
//! and job-duration histograms the claim and the finish observe.
//!
//! Label values come from users (`runs_on`, `RUNNER_LABELS`): they are escaped, and each
//! metric keeps a bounded number of label sets.

use crate::state::AppState;
use gitweave_http::metrics::{MAX_LABEL_SETS, label_value};
use gitweave_model::labels::Labels;
use gitweave_storage::jobs;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `key=value,…` of a label set, sorted by key (a `BTreeMap` is), without the runner's name
/// (one per runner: grouping by it would make a series per runner, not per kind of runner).
pub fn label_set(labels: &Labels) -> String {
    labels
        .iter()
        .filter(|(k, _)| k.as_str() != "runner")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `requires="…"` for a job's stored requirements (a JSON object of label → value).
pub fn requires_label(requires: &serde_json::Value) -> String {
    let labels = crate::wakeups::labels_of(requires);
    format!("requires=\"{}\"", label_value(&label_set(&labels)))
}

/// The scrape-time lines: queue depth and the online fleet.
pub async fn render(state: &AppState) -> String {
    let mut out = String::new();
    match jobs::queue_depth(&state.pool, MAX_LABEL_SETS as i64).await {
        Ok(rows) => {
            let _ = writeln!(
                out,
                "# HELP gitweave_queue_depth Queued jobs of unfinished runs, by requirement set: due (a matching runner with a free slot takes them) or held (needs, approval, retry backoff)."
            );
            let _ = writeln!(out, "# TYPE gitweave_queue_depth gauge");
            for r in rows {
                let req = requires_label(&r.requires);
                let _ = writeln!(out, "gitweave_queue_depth{{{req},state=\"due\"}} {}", r.due);
                let _ = writeln!(
                    out,
                    "gitweave_queue_depth{{{req},state=\"held\"}} {}",
                    r.held
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "queue depth for /metrics"),
    }
    match crate::routes::runner_slots(state).await {
        Ok(slots) => {
            // (online, slots, busy) per label set; at most MAX_LABEL_SETS sets.
            let mut sets: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
            for s in slots.iter().filter(|s| s.online) {
                let key = label_set(&s.labels);
                if sets.len() >= MAX_LABEL_SETS && !sets.contains_key(&key) {
                    continue;
                }
                let e = sets.entry(key).or_default();
                e.0 += 1;
                e.1 += s.capacity;
                e.2 += s.busy;
            }
            let offline = slots.iter().filter(|s| !s.online).count();
            for (name, help, pick) in [
                (
                    "gitweave_runners_online",
                    "Runners in contact within one lease, by label set.",
                    0,
                ),
                (
                    "gitweave_runner_slots",
                    "Registered capacity of the online runners, by label set.",
                    1,
                ),
                (
                    "gitweave_runner_slots_busy",
                    "Jobs the online runners run now, by label set.",
                    2,
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} gauge");
                for (set, v) in &sets {
                    let n = [v.0, v.1, v.2][pick];
                    let _ = writeln!(out, "{name}{{labels=\"{}\"}} {n}", label_value(set));
                }
            }
            let _ = writeln!(
                out,
                "# HELP gitweave_runners_offline Registered, not revoked runners not heard from within a lease."
            );
            let _ = writeln!(out, "# TYPE gitweave_runners_offline gauge");
            let _ = writeln!(out, "gitweave_runners_offline {offline}");
        }
        Err(e) => tracing::warn!(error = ?e, "runners for /metrics"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{label_set, requires_label};
    use gitweave_model::labels::Labels;

    #[test]
    fn label_sets_leave_out_the_runner_name_and_stay_one_escaped_value() {
        let labels: Labels = [
            ("runner", "r-7"),
            ("zone", "a"),
            ("engine", "docker"),
            ("arch", "x86_64"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(label_set(&labels), "arch=x86_64,engine=docker,zone=a");
        assert_eq!(
            requires_label(&serde_json::json!({ "engine": "docker", "gpu": "a\"b" })),
            "requires=\"engine=docker,gpu=a\\\"b\""
        );
        assert_eq!(requires_label(&serde_json::json!("junk")), "requires=\"\"");
    }
}
