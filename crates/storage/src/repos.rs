//! `repos`.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored repo.
#[derive(Debug, Clone)]
pub struct RepoRow {
    /// Row id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Clone URL.
    pub clone_url: Option<String>,
    /// Default branch.
    pub default_branch: String,
    /// Webhook secret (never leaves the service).
    pub webhook_secret: Option<String>,
    /// `protected_refs` globs; `None` when never set (the default: the default branch).
    pub protected_refs: Option<Vec<String>>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Updated.
    pub updated_at: OffsetDateTime,
}

/// Values to write; `None` keeps the stored value (or the default on create).
#[derive(Debug, Clone, Default)]
pub struct RepoChanges {
    /// `Some(None)` clears.
    pub clone_url: Option<Option<String>>,
    /// New default branch.
    pub default_branch: Option<String>,
    /// `Some(None)` clears.
    pub webhook_secret: Option<Option<String>>,
    /// New `protected_refs` globs.
    pub protected_refs: Option<Vec<String>>,
}

/// Creates or updates a repo; the flag says whether it was created.
pub async fn upsert(
    e: impl PgExecutor<'_>,
    name: &str,
    c: &RepoChanges,
) -> Result<(RepoRow, bool), sqlx::Error> {
    let row = sqlx::query!(
        r#"
        INSERT INTO repos (id, name, clone_url, default_branch, webhook_secret, protected_refs)
        VALUES ($1, $2, $4, COALESCE($5, 'main'), $7, $8)
        ON CONFLICT (name) DO UPDATE SET
            clone_url      = CASE WHEN $3 THEN EXCLUDED.clone_url ELSE repos.clone_url END,
            default_branch = COALESCE($5, repos.default_branch),
            webhook_secret = CASE WHEN $6 THEN EXCLUDED.webhook_secret ELSE repos.webhook_secret END,
            protected_refs = COALESCE($8, repos.protected_refs),
            updated_at     = now()
        RETURNING id, name, clone_url, default_branch, webhook_secret, protected_refs,
                  created_at, updated_at, (xmax = 0) AS "inserted!"
        "#,
        Uuid::now_v7(),
        name,
        c.clone_url.is_some(),
        c.clone_url.clone().flatten(),
        c.default_branch,
        c.webhook_secret.is_some(),
        c.webhook_secret.clone().flatten(),
        c.protected_refs.as_deref(),
    )
    .fetch_one(e)
    .await?;
    Ok((
        RepoRow {
            id: row.id,
            name: row.name,
            clone_url: row.clone_url,
            default_branch: row.default_branch,
            webhook_secret: row.webhook_secret,
            protected_refs: row.protected_refs,
            created_at: row.created_at,
            updated_at: row.updated_at,
        },
        row.inserted,
    ))
}

/// A repo by name.
pub async fn get(e: impl PgExecutor<'_>, name: &str) -> Result<Option<RepoRow>, sqlx::Error> {
    sqlx::query_as!(
        RepoRow,
        "SELECT id, name, clone_url, default_branch, webhook_secret, protected_refs, created_at,
                updated_at
         FROM repos WHERE name = $1",
        name
    )
    .fetch_optional(e)
    .await
}

/// All repos by name.
pub async fn list(e: impl PgExecutor<'_>) -> Result<Vec<RepoRow>, sqlx::Error> {
    sqlx::query_as!(
        RepoRow,
        "SELECT id, name, clone_url, default_branch, webhook_secret, protected_refs, created_at,
                updated_at
         FROM repos ORDER BY name"
    )
    .fetch_all(e)
    .await
}

/// What [`delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoDeleted {
    /// Gone, with these runs and their jobs (logs, events, deliveries and attachments went by
    /// cascade).
    Deleted {
        /// The repo's runs.
        runs: Vec<Uuid>,
        /// Their jobs.
        jobs: Vec<Uuid>,
    },
    /// Kept: these runs (at most 10, oldest first) have not ended.
    Active(Vec<Uuid>),
    /// No repo of that name.
    NotFound,
}

/// Deletes a repo with everything of its own (runs, jobs, logs, events, webhook deliveries,
/// attachments) unless one of its runs is still active. Takes the repo's row lock first: a
/// trigger inserting a run holds a key-share lock on that row until it commits, so a run
/// being created is either seen here or fails its foreign key afterwards.
pub async fn delete(conn: &mut sqlx::PgConnection, name: &str) -> Result<RepoDeleted, sqlx::Error> {
    let Some(id) = sqlx::query_scalar!("SELECT id FROM repos WHERE name = $1 FOR UPDATE", name)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(RepoDeleted::NotFound);
    };
    let active: Vec<String> = gitweave_model::status::RunStatus::ALL
        .iter()
        .filter(|s| !s.is_terminal())
        .map(|s| s.as_str().to_owned())
        .collect();
    let busy = sqlx::query_scalar!(
        "SELECT id FROM pipeline_runs WHERE repo_id = $1 AND status = ANY($2::text[])
         ORDER BY id LIMIT 10",
        id,
        &active
    )
    .fetch_all(&mut *conn)
    .await?;
    if !busy.is_empty() {
        return Ok(RepoDeleted::Active(busy));
    }
    let rows = sqlx::query!(
        r#"WITH gone AS (
               DELETE FROM pipeline_runs WHERE repo_id = $1 RETURNING id
           )
           SELECT gone.id AS "run_id!", j.id AS "job_id?"
           FROM gone LEFT JOIN jobs j ON j.run_id = gone.id"#,
        id
    )
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM repos WHERE id = $1", id)
        .execute(&mut *conn)
        .await?;
    let (mut runs, mut jobs) = (Vec::new(), Vec::new());
    for r in rows {
        if !runs.contains(&r.run_id) {
            runs.push(r.run_id);
        }
        jobs.extend(r.job_id);
    }
    Ok(RepoDeleted::Deleted { runs, jobs })
}
