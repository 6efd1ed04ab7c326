//! The results as Markdown: a summary against the targets, then one section per workload.

use crate::stats::Summary;

/// One figure compared with its target.
#[derive(Debug, Clone)]
pub struct Target {
    /// `W1`, `W2`, …
    pub workload: &'static str,
    /// What is measured.
    pub measure: String,
    /// The figure, formatted.
    pub value: String,
    /// The target, formatted (`≤ 1.0×`).
    pub target: String,
    /// Whether it holds; `None` when nothing could be measured.
    pub met: Option<bool>,
}

impl Target {
    /// A figure that must be at most `limit`.
    pub fn at_most(
        workload: &'static str,
        measure: &str,
        value: Option<f64>,
        limit: f64,
        unit: &str,
    ) -> Self {
        Self {
            workload,
            measure: measure.to_owned(),
            value: value.map_or_else(|| "n/a".into(), |v| fmt_unit(v, unit)),
            target: format!("≤ {}", fmt_unit(limit, unit)),
            met: value.map(|v| v <= limit),
        }
    }

    /// A figure shown for reference, with no target.
    pub fn reference(workload: &'static str, measure: &str, value: String) -> Self {
        Self {
            workload,
            measure: measure.to_owned(),
            value,
            target: "—".into(),
            met: None,
        }
    }

    /// A figure that must be at least `limit`.
    pub fn at_least(
        workload: &'static str,
        measure: &str,
        value: Option<f64>,
        limit: f64,
        unit: &str,
    ) -> Self {
        Self {
            workload,
            measure: measure.to_owned(),
            value: value.map_or_else(|| "n/a".into(), |v| fmt_unit(v, unit)),
            target: format!("≥ {}", fmt_unit(limit, unit)),
            met: value.map(|v| v >= limit),
        }
    }
}

fn fmt_unit(v: f64, unit: &str) -> String {
    match unit {
        "×" => format!("{v:.2}×"),
        "ms" => format!("{} ms", fmt_ms(v)),
        "" => format!("{v:.0}"),
        u => format!("{v:.1} {u}"),
    }
}

/// Milliseconds with sensible precision.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// What one workload produced.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Markdown body.
    pub body: String,
    /// Figures against targets.
    pub targets: Vec<Target>,
}

/// A Markdown table of timing summaries: one row per compared command, with the ratio of each
/// median to the median of row `base`.
pub fn timing_table(rows: &[(String, Option<Summary>)], base: usize) -> String {
    let base_median = rows.get(base).and_then(|(_, s)| s.map(|s| s.median));
    let mut out = String::from(
        "| command | n | median | min | max | median ÷ baseline |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for (name, s) in rows {
        match s {
            Some(s) => {
                let ratio = base_median
                    .filter(|b| *b > 0.0)
                    .map_or_else(|| "n/a".into(), |b| format!("{:.2}×", s.median / b));
                out.push_str(&format!(
                    "| {name} | {} | {} ms | {} ms | {} ms | {ratio} |\n",
                    s.n,
                    fmt_ms(s.median),
                    fmt_ms(s.min),
                    fmt_ms(s.max)
                ));
            }
            None => out.push_str(&format!("| {name} | 0 | n/a | n/a | n/a | n/a |\n")),
        }
    }
    out
}

/// The summary table.
pub fn summary_table(targets: &[Target]) -> String {
    let mut out = String::from(
        "| workload | measure | result | target | holds? |\n|---|---|---:|---:|---|\n",
    );
    for t in targets {
        let verdict = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None if t.target == "—" => "(reference)",
            None => "not measured",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {verdict} |\n",
            t.workload, t.measure, t.value, t.target
        ));
    }
    out
}
