//! Postgres storage for pipeline-svc.
//!
//! One module per table; functions take any executor (`&mut PgConnection`, a transaction or
//! the pool) so a handler composes them in one transaction. Orchestration decisions live in
//! `gitweave_model::plan` and pipeline-svc; this crate only reads and writes rows.

pub mod deliveries;
pub mod events;
pub mod jobs;
pub mod logs;
pub mod repos;
pub mod runners;
pub mod runs;
pub mod templates;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

pub use sqlx;

/// The embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// `postgres://…`.
    pub url: String,
    /// Upper bound of open connections.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing (503).
    pub acquire_timeout: Duration,
}

/// Opens a lazily-connecting pool: the service starts (and answers `/healthz`) even while
/// Postgres is still coming up; `/readyz` says when it answers.
pub fn pool(config: &PoolConfig) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(&config.url)?.application_name("gitweave");
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_lazy_with(options))
}

/// Runs pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether an error is a unique-constraint violation (to map to 409/422 on purpose).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
