//! `secrets` and `secrets_key_check`: sealed values only; pipeline-svc seals and opens them.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// A stored secret: what the API may show, without the sealed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Its name.
    pub name: String,
    /// Given only to runs of protected refs.
    pub protected: bool,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last replaced.
    pub updated_at: OffsetDateTime,
}

/// A sealed secret as stored (its `Debug` shows only lengths of the sealed bytes, which are
/// ciphertext anyway).
#[derive(Debug, Clone)]
pub struct SealedRow {
    /// `None`: a global secret.
    pub repo_id: Option<Uuid>,
    /// Its name.
    pub name: String,
    /// Given only to runs of protected refs.
    pub protected: bool,
    /// The nonce of this value.
    pub nonce: Vec<u8>,
    /// The sealed value with its tag.
    pub ciphertext: Vec<u8>,
}

/// What to write.
#[derive(Debug, Clone, Copy)]
pub struct NewSecret<'a> {
    /// `None`: a global secret.
    pub repo_id: Option<Uuid>,
    /// Its name.
    pub name: &'a str,
    /// Given only to runs of protected refs.
    pub protected: bool,
    /// The nonce of this value.
    pub nonce: &'a [u8],
    /// The sealed value with its tag.
    pub ciphertext: &'a [u8],
}

/// Creates or replaces a secret; the flag says whether it was created.
pub async fn upsert(
    e: impl PgExecutor<'_>,
    s: &NewSecret<'_>,
) -> Result<(SecretMeta, bool), sqlx::Error> {
    let row = sqlx::query!(
        r#"
        INSERT INTO secrets (id, repo_id, name, protected, nonce, ciphertext)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (repo_id, name) DO UPDATE SET
            protected  = EXCLUDED.protected,
            nonce      = EXCLUDED.nonce,
            ciphertext = EXCLUDED.ciphertext,
            updated_at = now()
        RETURNING name, protected, created_at, updated_at, (xmax = 0) AS "inserted!"
        "#,
        Uuid::now_v7(),
        s.repo_id,
        s.name,
        s.protected,
        s.nonce,
        s.ciphertext,
    )
    .fetch_one(e)
    .await?;
    Ok((
        SecretMeta {
            name: row.name,
            protected: row.protected,
            created_at: row.created_at,
            updated_at: row.updated_at,
        },
        row.inserted,
    ))
}

/// The secrets of a repo (`Some`) or the global ones (`None`), by name.
pub async fn list(
    e: impl PgExecutor<'_>,
    repo_id: Option<Uuid>,
) -> Result<Vec<SecretMeta>, sqlx::Error> {
    sqlx::query_as!(
        SecretMeta,
        r#"
        SELECT name, protected, created_at, updated_at FROM secrets
        WHERE repo_id IS NOT DISTINCT FROM $1
        ORDER BY name
        "#,
        repo_id,
    )
    .fetch_all(e)
    .await
}

/// Deletes one; whether it existed.
pub async fn delete(
    e: impl PgExecutor<'_>,
    repo_id: Option<Uuid>,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "DELETE FROM secrets WHERE repo_id IS NOT DISTINCT FROM $1 AND name = $2",
        repo_id,
        name,
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// The sealed secrets named `names` that a job of `repo_id` can see: the repo's and the
/// global ones (both may come back for one name; the caller lets the repo's win).
pub async fn for_job(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
    names: &[String],
) -> Result<Vec<SealedRow>, sqlx::Error> {
    sqlx::query_as!(
        SealedRow,
        r#"
        SELECT repo_id, name, protected, nonce, ciphertext FROM secrets
        WHERE (repo_id = $1 OR repo_id IS NULL) AND name = ANY($2)
        "#,
        repo_id,
        names,
    )
    .fetch_all(e)
    .await
}

/// Every sealed secret (for re-sealing under a new key).
pub async fn all(e: impl PgExecutor<'_>) -> Result<Vec<SealedRow>, sqlx::Error> {
    sqlx::query_as!(
        SealedRow,
        "SELECT repo_id, name, protected, nonce, ciphertext FROM secrets ORDER BY id"
    )
    .fetch_all(e)
    .await
}

/// Replaces the sealed value of one secret, keeping its other fields (key rotation).
pub async fn reseal(
    e: impl PgExecutor<'_>,
    repo_id: Option<Uuid>,
    name: &str,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE secrets SET nonce = $3, ciphertext = $4 WHERE repo_id IS NOT DISTINCT FROM $1 AND name = $2",
        repo_id,
        name,
        nonce,
        ciphertext,
    )
    .execute(e)
    .await?;
    Ok(())
}

/// The stored key check value: `(nonce, ciphertext)`, when one was written.
pub async fn key_check(e: impl PgExecutor<'_>) -> Result<Option<(Vec<u8>, Vec<u8>)>, sqlx::Error> {
    let row = sqlx::query!("SELECT nonce, ciphertext FROM secrets_key_check")
        .fetch_optional(e)
        .await?;
    Ok(row.map(|r| (r.nonce, r.ciphertext)))
}

/// Writes the key check value when none is stored; whether this call wrote it (another
/// instance starting at the same time may have won).
pub async fn init_key_check(
    e: impl PgExecutor<'_>,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "INSERT INTO secrets_key_check (nonce, ciphertext) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        nonce,
        ciphertext,
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Replaces the key check value (key rotation, in the transaction that re-seals).
pub async fn set_key_check(
    e: impl PgExecutor<'_>,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO secrets_key_check (nonce, ciphertext) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext",
        nonce,
        ciphertext,
    )
    .execute(e)
    .await?;
    Ok(())
}

/// A repo's `protected_refs` globs; `None` when never set (the default: its default branch).
pub async fn protected_refs(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    let row = sqlx::query!("SELECT protected_refs FROM repos WHERE id = $1", repo_id)
        .fetch_optional(e)
        .await?;
    Ok(row.and_then(|r| r.protected_refs))
}
