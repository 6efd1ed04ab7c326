//! Tracing set-up: `RUST_LOG` filters, `LOG_FORMAT` picks `json` or `pretty`.

use std::str::FromStr;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates whose debug output carries what must never reach a log, capped at `INFO` whatever
/// `RUST_LOG` says: bollard logs every Docker request and response body at `DEBUG`, and a
/// container's create body and inspect answer hold its environment, where a job's secrets are
/// (SPEC §10).
const CAPPED_AT_INFO: &[&str] = &["bollard"];

/// The cap as a filter that lets everything else through to `RUST_LOG`'s filter.
fn never_logged() -> Targets {
    CAPPED_AT_INFO.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::INFO),
    )
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    #[default]
    Pretty,
    /// One JSON object per line, for a log collector.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("LOG_FORMAT must be json or pretty, not {other:?}")),
        }
    }
}

/// Installs the global subscriber once. A second call (tests starting several services in one
/// process) is a no-op.
pub fn init_telemetry(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    let _already_installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .finish()
            .with(never_logged())
            .try_init(),
        LogFormat::Pretty => builder.compact().finish().with(never_logged()).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn bollard_debug_is_never_enabled_while_other_crates_pass_through() {
        let t = never_logged();
        assert!(!t.would_enable("bollard::docker", &Level::DEBUG));
        assert!(!t.would_enable("bollard", &Level::TRACE));
        assert!(t.would_enable("bollard::docker", &Level::INFO));
        assert!(t.would_enable("runner_svc::executor", &Level::TRACE));
    }
}
