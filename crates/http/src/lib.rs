//! HTTP plumbing shared by the three GitWeave services.
//!
//! Every service answers errors with the same envelope, carries an `x-request-id` through
//! gateway → pipeline-svc → runner, logs as JSON or pretty text, serves Prometheus metrics and
//! stops cleanly on SIGTERM. Keeping these here means the services cannot drift apart.

pub mod conn_limit;
pub mod error;
pub mod metrics;
pub mod rejection;
pub mod request_id;
pub mod secret;
pub mod serve;
pub mod shutdown;
pub mod telemetry;

pub use error::{ErrorBody, ErrorEnvelope, error_response};
pub use metrics::Metrics;
pub use rejection::envelope_rejections;
pub use request_id::{REQUEST_ID_HEADER, request_id_layers};
pub use serve::{ServeOptions, no_delay, serve};
pub use shutdown::shutdown_signal;
pub use telemetry::{LogFormat, init_telemetry};
