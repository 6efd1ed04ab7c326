//! A run or job id from a path segment: a whole UUID, or a short id (8+ hex digits that the
//! id starts or ends with, `gitweave_model::short_id`) resolved here, so every client gets
//! the same answer: one match, `404`, or `409 ambiguous` naming the candidates.

use crate::error::ApiError;
use crate::state::AppState;
use gitweave_api::error_code;
use gitweave_model::short_id::{IdRef, ShortId};
use gitweave_storage::short_ids;
use std::future::Future;
use uuid::Uuid;

/// Candidates named in an ambiguity's message.
const SHOWN: i64 = 10;

/// The run `raw` names.
pub async fn run(state: &AppState, raw: &str) -> Result<Uuid, ApiError> {
    resolve("run", raw, |s| async move {
        short_ids::runs(&state.pool, &s, SHOWN + 1).await
    })
    .await
}

/// The job `raw` names.
pub async fn job(state: &AppState, raw: &str) -> Result<Uuid, ApiError> {
    resolve("job", raw, |s| async move {
        short_ids::jobs(&state.pool, &s, SHOWN + 1).await
    })
    .await
}

async fn resolve<F, Fut>(what: &str, raw: &str, find: F) -> Result<Uuid, ApiError>
where
    F: FnOnce(ShortId) -> Fut,
    Fut: Future<Output = Result<Vec<Uuid>, sqlx::Error>>,
{
    let short = match IdRef::parse(raw) {
        Ok(IdRef::Full(id)) => return Ok(id),
        Ok(IdRef::Short(s)) => s,
        Err(e) => {
            return Err(ApiError::BadRequest(
                error_code::INVALID_ID,
                format!("{what} id {e}"),
            ));
        }
    };
    let found = find(short.clone()).await?;
    match found.as_slice() {
        [] => Err(ApiError::NotFound(format!(
            "no {what} id starts or ends with {short}"
        ))),
        [one] => Ok(*one),
        many => {
            let mut names: Vec<String> = many
                .iter()
                .take(SHOWN as usize)
                .map(Uuid::to_string)
                .collect();
            if many.len() as i64 > SHOWN {
                names.push("…".into());
            }
            Err(ApiError::Conflict(
                error_code::AMBIGUOUS,
                format!(
                    "{what} id {short} is ambiguous: it matches {}; give more digits or the whole id",
                    names.join(", ")
                ),
            ))
        }
    }
}
