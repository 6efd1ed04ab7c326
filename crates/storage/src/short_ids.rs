//! Runs and jobs named by a short id (`gitweave_model::short_id`): the ids that start or end
//! with the given hex digits, through the primary key's range and the `right(id::text, 8)`
//! indexes.

use gitweave_model::short_id::ShortId;
use sqlx::PgExecutor;
use uuid::Uuid;

/// At most `limit` run ids that start or end with `short`, in id order.
pub async fn runs(
    e: impl PgExecutor<'_>,
    short: &ShortId,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let (lo, hi) = short.prefix_range();
    sqlx::query_scalar!(
        r#"SELECT id FROM pipeline_runs
           WHERE id BETWEEN $1 AND $2
              OR (right(id::text, 8) = $3 AND replace(id::text, '-', '') LIKE '%' || $4)
           ORDER BY id LIMIT $5"#,
        lo,
        hi,
        short.last8(),
        short.as_str(),
        limit
    )
    .fetch_all(e)
    .await
}

/// At most `limit` job ids that start or end with `short`, in id order.
pub async fn jobs(
    e: impl PgExecutor<'_>,
    short: &ShortId,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let (lo, hi) = short.prefix_range();
    sqlx::query_scalar!(
        r#"SELECT id FROM jobs
           WHERE id BETWEEN $1 AND $2
              OR (right(id::text, 8) = $3 AND replace(id::text, '-', '') LIKE '%' || $4)
           ORDER BY id LIMIT $5"#,
        lo,
        hi,
        short.last8(),
        short.as_str(),
        limit
    )
    .fetch_all(e)
    .await
}
