//! `webhook_deliveries`: each provider delivery id once, with the run it made.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Records a delivery; false when it was already recorded.
pub async fn insert(
    e: impl PgExecutor<'_>,
    provider: &str,
    delivery_id: &str,
    repo_id: Uuid,
    run_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "INSERT INTO webhook_deliveries (provider, delivery_id, repo_id, run_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (provider, delivery_id) DO NOTHING",
        provider,
        delivery_id,
        repo_id,
        run_id
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The run a delivery made, if it was seen.
pub async fn run_of(
    e: impl PgExecutor<'_>,
    provider: &str,
    delivery_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let r = sqlx::query_scalar!(
        "SELECT run_id FROM webhook_deliveries WHERE provider = $1 AND delivery_id = $2",
        provider,
        delivery_id
    )
    .fetch_optional(e)
    .await?;
    Ok(r.flatten())
}

/// Records a delivery that made no run, with the answer it got; false when the delivery was
/// already recorded.
pub async fn insert_answer(
    e: impl PgExecutor<'_>,
    provider: &str,
    delivery_id: &str,
    repo_id: Uuid,
    answer: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "INSERT INTO webhook_deliveries (provider, delivery_id, repo_id, answer) VALUES ($1, $2, $3, $4)
         ON CONFLICT (provider, delivery_id) DO NOTHING",
        provider,
        delivery_id,
        repo_id,
        answer
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The answer stored for a delivery that made no run.
pub async fn answer_of(
    e: impl PgExecutor<'_>,
    provider: &str,
    delivery_id: &str,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    let r = sqlx::query_scalar!(
        "SELECT answer FROM webhook_deliveries WHERE provider = $1 AND delivery_id = $2",
        provider,
        delivery_id
    )
    .fetch_optional(e)
    .await?;
    Ok(r.flatten())
}
