//! Postgres storage for pipeline-svc.
//!
//! One module per table; functions take any executor (`&mut PgConnection`, a transaction or
//! the pool) so a handler composes them in one transaction. Orchestration decisions live in
//! `gitweave_model::plan` and pipeline-svc; this crate only reads and writes rows.

pub mod artifacts;
pub mod deliveries;
pub mod events;
pub mod jobs;
pub mod logs;
pub mod repos;
pub mod retention;
pub mod runners;
pub mod runs;
pub mod secrets;
pub mod service_logs;
pub mod short_ids;
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

/// A pooled connection idle at least this long is pinged before it is handed out.
///
/// Upstream sqlx pings every connection when it goes back to the pool, and by default once
/// more when it leaves it: two round trips per query on top of the query itself. The vendored
/// sqlx-core (vendor/README.md) pings on release only a connection with unsent writes (a
/// dropped transaction's ROLLBACK), and the pool does not test on acquire, except a connection
/// idle this long: one that sat idle through a Postgres restart is found dead here rather than
/// by a request (the Postgres-restart fault test). One that broke during the exchange just
/// before its release fails the next query on it, once: Postgres went away within this
/// window, so a fresh connection would fail as well (bench/FINDINGS.md #4, #26).
pub const PING_IF_IDLE_FOR: Duration = Duration::from_millis(100);

/// Opens a lazily-connecting pool: the service starts (and answers `/healthz`) even while
/// Postgres is still coming up; `/readyz` says when it answers.
pub fn pool(config: &PoolConfig) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(&config.url)?.application_name("gitweave");
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
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

/// A read-only transaction whose every query sees the database as of its first one, so a
/// row and its children (a run and its jobs) read in it agree with each other.
pub async fn snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
}
