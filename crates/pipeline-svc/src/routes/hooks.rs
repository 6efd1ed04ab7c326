//! `POST /repos/{repo}/hooks/{provider}`: push webhooks from GitHub, Gitea, Forgejo and GitLab
//! (SPEC §7).
//!
//! The order of the checks is the order of trust: the raw body is read (at most
//! [`WEBHOOK_BODY_LIMIT`], else 413), the repo must exist and have a secret and the signature
//! must match the raw body (401, the same answer for all three, so repo names cannot be
//! probed); only then is the body parsed (400 when it is not
//! JSON). A refused delivery creates nothing, not even its delivery record. A push makes a run
//! through [`orchestrator::trigger`], which records the delivery id in the run's transaction,
//! so a delivery sent twice makes one run and the second answer points at it.

use super::runs::{created, made};
use super::valid_name;
use crate::error::ApiError;
use crate::extract::body_error;
use crate::orchestrator::{self, Delivery, PullRequest, TriggerParams, Triggered};
use crate::state::AppState;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use gitweave_api::error_code;
use gitweave_model::names::RepoName;
use gitweave_model::status::Trigger;
use gitweave_model::webhook::{self, Decision, PayloadError, Provider, VerifyError};
use gitweave_storage::repos;
use http::{HeaderMap, StatusCode, header};
use rand::Rng;
use serde_json::json;

/// Largest webhook body (SPEC §7); the gateway enforces the same limit.
pub const WEBHOOK_BODY_LIMIT: usize = 25 * 1024 * 1024;

/// Longest delivery id kept; longer ones are cut (they are ids, not content).
const MAX_DELIVERY_ID: usize = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(
        "/repos/{repo}/hooks/{provider}",
        // Its own limit: the rest of /api/v1 takes 1 MiB, webhooks (a push of many commits)
        // up to 25 MiB. The layer nearest the handler wins.
        post(receive).layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
    )
}

fn header_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An answer that made no run.
fn no_run(status: StatusCode, outcome: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "status": outcome, "message": message })),
    )
        .into_response()
}

async fn receive(
    State(state): State<AppState>,
    Path((repo, provider)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let repo = valid_name(RepoName::parse, &repo)?;
    let provider = Provider::parse(&provider).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no webhook receiver for provider {provider:?}; use github, gitea, forgejo or gitlab"
        ))
    })?;
    let row = repos::get(&state.pool, repo.as_str()).await?;
    let lookup = |name: &str| header_value(&headers, name);
    // An unknown repo, and a repo without a secret, are checked against a secret nobody
    // knows and always refused: the answer (status, message, and the work done) is the one a
    // wrong signature gets, so webhooks cannot probe which repos exist (SPEC §7).
    let verified = match row.as_ref().and_then(|r| r.webhook_secret.as_deref()) {
        Some(secret) => {
            webhook::verify(provider, Some(secret), lookup, &body).map_err(|e| (e.to_string(), e))
        }
        None => {
            let decoy: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            let e = webhook::verify(provider, Some(&decoy), lookup, &body)
                .err()
                .unwrap_or(VerifyError::Mismatch {
                    header: provider.signature_headers()[0],
                });
            let why = if row.is_none() {
                "the repo does not exist"
            } else {
                "the repo has no webhook_secret"
            };
            Err((why.to_owned(), e))
        }
    };
    if let Err((why, e)) = verified {
        state.metrics.inc(
            "gitweave_webhooks_total",
            &format!("provider=\"{provider}\",result=\"refused\""),
        );
        tracing::warn!(repo = %repo, %provider, reason = %why, "webhook refused");
        return Err(ApiError::Unauthorized(format!(
            "{e}; if the secret is right, check that the repo exists and has a webhook_secret (pipeline-svc's log says which)"
        )));
    }

    let event_headers = provider.event_headers();
    let (_, event) = webhook::first_header(event_headers, lookup).ok_or_else(|| {
        ApiError::BadRequest(
            error_code::MISSING_EVENT,
            format!("the {} header is missing", event_headers[0]),
        )
    })?;
    let kind = webhook::event_kind(provider, event);
    let decision = webhook::decide(&kind, &body).map_err(|e| match e {
        PayloadError::Malformed(_) => {
            let form = header_value(&headers, header::CONTENT_TYPE.as_str())
                .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
            let hint = if form {
                "; set the webhook's content type to application/json"
            } else {
                ""
            };
            ApiError::BadRequest(error_code::MALFORMED_JSON, format!("{e}{hint}"))
        }
        PayloadError::Invalid(_) => ApiError::Invalid(error_code::INVALID_PAYLOAD, e.to_string()),
    })?;
    let result = |r: &str| format!("provider=\"{provider}\",result=\"{r}\"");
    // Everything but a push is answered without a run, and counted once.
    let answer = |status: StatusCode, label: &str, message: String| {
        state.metrics.inc("gitweave_webhooks_total", &result(label));
        let outcome = if label == "ping" { "pong" } else { "ignored" };
        Ok(no_run(status, outcome, message))
    };
    let params = match decision {
        Decision::Run(push) => TriggerParams {
            git_ref: Some(push.git_ref),
            commit: Some(push.after),
            before: push.before,
            head_message: push.head_message,
            ..TriggerParams::new(
                repo.to_string(),
                Trigger::Push,
                format!("webhook:{provider}"),
            )
        },
        Decision::PullRequest(pr) => TriggerParams {
            git_ref: Some(pr.git_ref),
            commit: Some(pr.head),
            pull_request: Some(PullRequest {
                number: pr.number,
                source_branch: pr.source_branch,
                target_branch: pr.target_branch,
                fork: pr.fork,
            }),
            ..TriggerParams::new(
                repo.to_string(),
                Trigger::PullRequest,
                format!("webhook:{provider}"),
            )
        },
        Decision::Ping => {
            return answer(
                StatusCode::OK,
                "ping",
                format!("repo {repo} receives {provider} webhooks"),
            );
        }
        Decision::Deleted { git_ref } => {
            return answer(
                StatusCode::ACCEPTED,
                "ignored",
                format!("{git_ref} was deleted; nothing to run"),
            );
        }
        Decision::Ignored { event } => {
            return answer(
                StatusCode::ACCEPTED,
                "ignored",
                format!("{event:?} events do not start runs; only pushes and pull requests do"),
            );
        }
        Decision::IgnoredAction { event, action } => {
            return answer(
                StatusCode::ACCEPTED,
                "ignored",
                format!(
                    "{event} action {action:?} does not start runs; opened, reopened and new commits do"
                ),
            );
        }
    };

    // Namespaced by repo: GitLab's event UUID is shared by every hook the same push fires, so
    // two GitWeave repos fed by one project must not take each other's delivery for a repeat.
    let delivery = webhook::first_header(provider.delivery_headers(), lookup).map(|(_, id)| {
        let id: String = id.chars().take(MAX_DELIVERY_ID).collect();
        Delivery {
            provider: provider.as_str().to_owned(),
            id: format!("{repo}/{id}"),
        }
    });
    if delivery.is_none() {
        tracing::warn!(repo = %repo, %provider, "webhook without a delivery id; a repeat of it would make another run");
    }
    let triggered = orchestrator::trigger(&state, TriggerParams { delivery, ..params }).await?;
    if let Triggered::Skipped(reason) = &triggered {
        state
            .metrics
            .inc("gitweave_webhooks_total", &result("skipped"));
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "skipped", "reason": reason })),
        )
            .into_response());
    }
    let run = made(&state, &triggered).await?;
    if let Triggered::DuplicateDelivery(_) = triggered {
        state
            .metrics
            .inc("gitweave_webhooks_total", &result("duplicate"));
        let location = format!("/api/v1/pipelines/runs/{}", run.id);
        return Ok((StatusCode::OK, [(header::LOCATION, location)], Json(run)).into_response());
    }
    state.metrics.inc("gitweave_webhooks_total", &result("run"));
    Ok(created(run))
}
