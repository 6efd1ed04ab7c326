//! api-gateway: the only public entry.
//!
//! It authenticates (`GITWEAVE_API_TOKEN`), assigns and propagates `x-request-id`, enforces
//! per-client rate limits, body limits and an upstream timeout, and proxies `/api/v1/*` to pipeline-svc with bodies
//! streamed both ways (so a followed log flows through as it is written). A path is parsed
//! once ([`gitweave_api::route`]) and only a path no URL parser would rewrite is forwarded; connections are
//! capped and must send their headers in time (`gitweave_http::serve`). When pipeline-svc is
//! down it answers with the JSON error envelope (503), never a bare connection error. It also
//! serves the web UI ([`ui`]) at `/`, a client of the same public API.

pub mod body;
pub mod config;
pub mod limit;
pub mod proxy;
pub mod startup;
pub mod state;
pub mod ui;

pub use config::Config;
pub use startup::App;
