//! `runners`: registered runner-svc instances.

use sqlx::{Acquire, PgConnection, PgExecutor};
use uuid::Uuid;

/// A runner to register.
#[derive(Debug, Clone)]
pub struct NewRunner<'a> {
    /// Its id (UUID v7).
    pub id: Uuid,
    /// Its name.
    pub name: &'a str,
    /// SHA-256 of its token.
    pub token_hash: &'a [u8],
    /// Job slots.
    pub capacity: i32,
    /// `docker` or `shell`.
    pub engine: &'a str,
    /// Its whole label set (SPEC §13), implicit labels included, as a JSON object.
    pub labels: &'a serde_json::Value,
    /// `RUNNER_HOST_ID`.
    pub host_id: Option<&'a str>,
}

/// What registering under a name took over from earlier registrations of it.
#[derive(Debug, Clone, Default)]
pub struct TakenOver {
    /// The registrations of the same name that were live and are now revoked.
    pub revoked: Vec<Uuid>,
    /// Their running jobs, whose leases now end at once (the reaper takes them back).
    pub jobs_released: u64,
}

/// Registers a runner (the token is stored only as its SHA-256). A live registration of the
/// same name is revoked first: its token stops working and the leases of its running jobs
/// end now, so the lease reaper takes them back without waiting (a restarted runner removes
/// its earlier containers anyway). Same-name registrations are serialised by an advisory lock,
/// so two live registrations never share a name (the unique index `runners_live_name` holds
/// it too).
pub async fn register(
    conn: &mut PgConnection,
    r: &NewRunner<'_>,
) -> Result<TakenOver, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('gitweave.runner:' || $1, 0))",
        r.name
    )
    .execute(&mut *tx)
    .await?;
    let revoked = sqlx::query_scalar!(
        "UPDATE runners SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING id",
        r.name
    )
    .fetch_all(&mut *tx)
    .await?;
    let jobs_released = if revoked.is_empty() {
        0
    } else {
        sqlx::query!(
            "UPDATE jobs SET lease_expires_at = now()
             WHERE status = 'running' AND runner_id = ANY($1)",
            &revoked
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    sqlx::query!(
        "INSERT INTO runners (id, name, token_hash, capacity, engine, labels, host_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        r.id,
        r.name,
        r.token_hash,
        r.capacity,
        r.engine,
        r.labels,
        r.host_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(TakenOver {
        revoked,
        jobs_released,
    })
}

/// Records that the reaper took an attempt back from runner `id` (its lease ran out): claim
/// requests it sent before now get no job ([`crate::jobs::claim`]).
pub async fn mark_lost(e: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE runners SET lost_at = now() WHERE id = $1", id)
        .execute(e)
        .await?;
    Ok(())
}

/// A live (not revoked) runner's name and token hash, touching `last_seen_at`.
pub async fn authenticate(
    e: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<Authenticated>, sqlx::Error> {
    sqlx::query_as!(
        Authenticated,
        "UPDATE runners SET last_seen_at = now() WHERE id = $1 AND revoked_at IS NULL
         RETURNING name, token_hash, labels",
        id
    )
    .fetch_optional(e)
    .await
}

/// A live registration, as [`authenticate`] finds it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Its name.
    pub name: String,
    /// SHA-256 of its token's secret.
    pub token_hash: Vec<u8>,
    /// Its whole label set (fixed at registration).
    pub labels: serde_json::Value,
}

/// A live (not revoked) registration, as `GET /runners` and the waiting rules see it.
#[derive(Debug, Clone)]
pub struct LiveRunner {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `RUNNER_HOST_ID`.
    pub host_id: Option<String>,
    /// Its whole label set (a JSON object of strings).
    pub labels: serde_json::Value,
    /// Registered capacity.
    pub capacity: i32,
    /// Jobs it runs now.
    pub busy: i64,
    /// Its last authenticated contact, as the database knows it.
    pub last_seen_at: time::OffsetDateTime,
}

/// Every live registration with how many jobs it runs, by name.
pub async fn live(e: impl PgExecutor<'_>) -> Result<Vec<LiveRunner>, sqlx::Error> {
    sqlx::query_as!(
        LiveRunner,
        r#"SELECT r.id, r.name, r.host_id, r.labels, r.capacity, r.last_seen_at,
                  (SELECT count(*) FROM jobs j
                   WHERE j.runner_id = r.id AND j.status = 'running') AS "busy!"
           FROM runners r WHERE r.revoked_at IS NULL ORDER BY r.name"#
    )
    .fetch_all(e)
    .await
}
