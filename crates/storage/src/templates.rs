//! `templates`, `template_versions` and `repo_templates` (attachments).

use sqlx::PgConnection;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// The latest version of a template.
#[derive(Debug, Clone)]
pub struct TemplateRow {
    /// Name.
    pub name: String,
    /// Latest version number (1-based).
    pub version: i32,
    /// YAML as uploaded.
    pub body: String,
    /// The validated template as JSON.
    pub parsed: serde_json::Value,
    /// First stored.
    pub created_at: OffsetDateTime,
    /// Latest version stored.
    pub updated_at: OffsetDateTime,
}

/// What a PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new template (version 1).
    Created,
    /// A new version.
    NewVersion,
    /// Same body as the latest version: nothing stored.
    Unchanged,
}

/// Stores a body as a new version unless it equals the latest. Takes the template's row lock,
/// so concurrent PUTs of one name number their versions without gaps or clashes.
pub async fn put(
    conn: &mut PgConnection,
    name: &str,
    body: &str,
    parsed: &serde_json::Value,
) -> Result<(i32, PutOutcome), sqlx::Error> {
    let created = sqlx::query_scalar!(
        "INSERT INTO templates (name, latest_version) VALUES ($1, 1)
         ON CONFLICT (name) DO NOTHING RETURNING latest_version",
        name
    )
    .fetch_optional(&mut *conn)
    .await?;
    if created.is_some() {
        sqlx::query!(
            "INSERT INTO template_versions (template_name, version, body, parsed) VALUES ($1, 1, $2, $3)",
            name,
            body,
            parsed
        )
        .execute(&mut *conn)
        .await?;
        return Ok((1, PutOutcome::Created));
    }
    let latest = sqlx::query!(
        "SELECT t.latest_version, v.body FROM templates t
         JOIN template_versions v ON v.template_name = t.name AND v.version = t.latest_version
         WHERE t.name = $1 FOR UPDATE OF t",
        name
    )
    .fetch_one(&mut *conn)
    .await?;
    if latest.body == body {
        return Ok((latest.latest_version, PutOutcome::Unchanged));
    }
    let version = latest.latest_version + 1;
    sqlx::query!(
        "INSERT INTO template_versions (template_name, version, body, parsed) VALUES ($1, $2, $3, $4)",
        name,
        version,
        body,
        parsed
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE templates SET latest_version = $2, updated_at = now() WHERE name = $1",
        name,
        version
    )
    .execute(&mut *conn)
    .await?;
    Ok((version, PutOutcome::NewVersion))
}

/// The latest version of a template.
pub async fn get(e: impl PgExecutor<'_>, name: &str) -> Result<Option<TemplateRow>, sqlx::Error> {
    sqlx::query_as!(
        TemplateRow,
        r#"SELECT t.name, t.latest_version AS version, v.body, v.parsed, t.created_at, t.updated_at
           FROM templates t
           JOIN template_versions v ON v.template_name = t.name AND v.version = t.latest_version
           WHERE t.name = $1"#,
        name
    )
    .fetch_optional(e)
    .await
}

/// All templates (latest versions) by name.
pub async fn list(e: impl PgExecutor<'_>) -> Result<Vec<TemplateRow>, sqlx::Error> {
    sqlx::query_as!(
        TemplateRow,
        r#"SELECT t.name, t.latest_version AS version, v.body, v.parsed, t.created_at, t.updated_at
           FROM templates t
           JOIN template_versions v ON v.template_name = t.name AND v.version = t.latest_version
           ORDER BY t.name"#
    )
    .fetch_all(e)
    .await
}

/// A template attached to a repo, with its latest version.
#[derive(Debug, Clone)]
pub struct AttachedRow {
    /// Template name.
    pub name: String,
    /// Stage position (1-based).
    pub position: i32,
    /// Default inputs (JSON object of strings).
    pub inputs: serde_json::Value,
    /// Latest version.
    pub version: i32,
    /// Latest version, validated, as JSON.
    pub parsed: serde_json::Value,
}

/// What [`attach`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    /// Newly attached, at the end.
    Created,
    /// Already attached: its default inputs were replaced in place.
    Updated,
    /// Not attached: the repo already has `max` templates.
    Full,
}

/// Attaches (appended to the end) unless the repo already has `max` templates attached, or,
/// when already attached, replaces the default inputs in place. Locks the repo row so
/// concurrent attaches get distinct positions and cannot pass `max` together.
pub async fn attach(
    conn: &mut PgConnection,
    repo_id: Uuid,
    name: &str,
    inputs: &serde_json::Value,
    max: i64,
) -> Result<Attached, sqlx::Error> {
    sqlx::query!("SELECT id FROM repos WHERE id = $1 FOR UPDATE", repo_id)
        .fetch_one(&mut *conn)
        .await?;
    let updated = sqlx::query!(
        "UPDATE repo_templates SET inputs = $3 WHERE repo_id = $1 AND template_name = $2",
        repo_id,
        name,
        inputs
    )
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() > 0 {
        return Ok(Attached::Updated);
    }
    let inserted = sqlx::query!(
        "INSERT INTO repo_templates (repo_id, template_name, position, inputs)
         SELECT $1, $2, COALESCE(MAX(position), 0) + 1, $3 FROM repo_templates WHERE repo_id = $1
         HAVING COUNT(*) < $4",
        repo_id,
        name,
        inputs,
        max
    )
    .execute(&mut *conn)
    .await?;
    Ok(if inserted.rows_affected() > 0 {
        Attached::Created
    } else {
        Attached::Full
    })
}

/// Detaches; false when it was not attached.
pub async fn detach(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        "DELETE FROM repo_templates WHERE repo_id = $1 AND template_name = $2",
        repo_id,
        name
    )
    .execute(e)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// The repo's attached templates in pipeline order.
pub async fn attached(
    e: impl PgExecutor<'_>,
    repo_id: Uuid,
) -> Result<Vec<AttachedRow>, sqlx::Error> {
    sqlx::query_as!(
        AttachedRow,
        r#"SELECT a.template_name AS name, a.position, a.inputs, t.latest_version AS version, v.parsed
           FROM repo_templates a
           JOIN templates t ON t.name = a.template_name
           JOIN template_versions v ON v.template_name = t.name AND v.version = t.latest_version
           WHERE a.repo_id = $1
           ORDER BY a.position"#,
        repo_id
    )
    .fetch_all(e)
    .await
}

/// What [`delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateDeleted {
    /// Gone, with all its versions.
    Deleted,
    /// Kept: attached to these repos (by name).
    Attached(Vec<String>),
    /// No template of that name.
    NotFound,
}

/// Deletes a template and its versions unless a repo has it attached. Takes the template's
/// row lock first: an attach in flight holds a key-share lock on it until it commits, so it
/// is either seen here or fails its foreign key afterwards. Runs keep working: their jobs
/// hold the expanded job, not a reference to the template.
pub async fn delete(conn: &mut PgConnection, name: &str) -> Result<TemplateDeleted, sqlx::Error> {
    let found = sqlx::query_scalar!(
        "SELECT name FROM templates WHERE name = $1 FOR UPDATE",
        name
    )
    .fetch_optional(&mut *conn)
    .await?;
    if found.is_none() {
        return Ok(TemplateDeleted::NotFound);
    }
    let repos = sqlx::query_scalar!(
        "SELECT r.name FROM repo_templates a JOIN repos r ON r.id = a.repo_id
         WHERE a.template_name = $1 ORDER BY r.name",
        name
    )
    .fetch_all(&mut *conn)
    .await?;
    if !repos.is_empty() {
        return Ok(TemplateDeleted::Attached(repos));
    }
    sqlx::query!("DELETE FROM templates WHERE name = $1", name)
        .execute(&mut *conn)
        .await?;
    Ok(TemplateDeleted::Deleted)
}
