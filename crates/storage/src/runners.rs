//! `runners`: registered runner-svc instances.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Registers a runner; the token is stored only as its SHA-256.
pub async fn insert(
    e: impl PgExecutor<'_>,
    id: Uuid,
    name: &str,
    token_hash: &[u8],
    capacity: i32,
    engine: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO runners (id, name, token_hash, capacity, engine) VALUES ($1, $2, $3, $4, $5)",
        id,
        name,
        token_hash,
        capacity,
        engine
    )
    .execute(e)
    .await?;
    Ok(())
}

/// A runner's name and token hash, touching `last_seen_at`.
pub async fn authenticate(
    e: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    let row = sqlx::query!(
        "UPDATE runners SET last_seen_at = now() WHERE id = $1 RETURNING name, token_hash",
        id
    )
    .fetch_optional(e)
    .await?;
    Ok(row.map(|r| (r.name, r.token_hash)))
}
