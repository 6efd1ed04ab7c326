//! Wire types shared by the services, the CLI and the tests, so every side agrees on field
//! names by construction rather than by convention.
//!
//! - [`error_code`]: the stable codes of the error envelope that several crates match.
//! - [`public`]: the REST API under `/api/v1` (SPEC §5).
//! - [`route`]: the public request path, parsed once (what the gateway may forward).
//! - [`runner`]: the internal protocol between pipeline-svc and runner-svc (`/internal/v1`).
//! - [`ts`]: timestamps as `2026-02-16T23:05:12.123Z`.

pub mod error_code;
pub mod public;
pub mod replay;
pub mod route;
pub mod runner;
pub mod secret;
pub mod ts;
