//! `/login` and `/logout`: the API token, typed once into a form, opens a session; the
//! session's cookie is what the browser keeps (never the token).

use crate::state::GatewayState;
use crate::ui::layout;
use crate::ui::session::{self, Session};
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, http::HeaderMap};
use gitweave_api::error_code;
use http::{StatusCode, header};
use maud::html;

/// `?next=` of the login page.
#[derive(Debug, serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a path of this site only (`/…`, not `//host` or `/\host`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && n.len() <= 2048
                && !n.bytes().any(|b| b.is_ascii_control()) =>
        {
            n
        }
        _ => "/",
    }
}

fn form(session: &Session, next: &str, problem: Option<&str>) -> maud::Markup {
    let body = html! {
        section.login {
            h1 { "Sign in" }
            p.muted { "This GitWeave asks for its API token (" code { "GITWEAVE_API_TOKEN" } ")." }
            @if let Some(p) = problem {
                p.problem role="alert" { (p) }
            }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus maxlength="4096";
                button type="submit" { "Sign in" }
            }
        }
    };
    layout::page("Sign in", None, false, body)
}

/// `GET /login`: the form (with a fresh anonymous session for its CSRF token).
pub async fn login_form(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref()).to_owned();
    if !session::sign_in_required(&state) {
        return Redirect::to(&next).into_response();
    }
    let existing = session::cookie_id(&headers).and_then(|id| state.sessions.get(id));
    if let Some(s) = &existing
        && s.signed_in
    {
        return Redirect::to(&next).into_response();
    }
    let (s, fresh) = match existing {
        Some(s) => (s, false),
        None => match state.sessions.create(false) {
            Some(s) => (s, true),
            None => return layout::sessions_full(),
        },
    };
    let mut resp = layout::respond(StatusCode::OK, form(&s, &next, None));
    if fresh {
        resp.headers_mut().append(
            header::SET_COOKIE,
            session::set_cookie(Some(&s), state.config.ui_secure_cookie),
        );
    }
    resp
}

/// The login form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// `POST /login`: checks the CSRF token of the form's session, then the API token
/// (constant-time); a new session id is issued on success.
pub async fn login(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !session::sign_in_required(&state) {
        return Redirect::to("/").into_response();
    }
    let Some(anon) = session::cookie_id(&headers).and_then(|id| state.sessions.get(id)) else {
        return layout::refused(
            StatusCode::FORBIDDEN,
            error_code::CSRF_FAILED,
            "no session cookie came with this form; open /login again (cookies must be allowed)",
        );
    };
    if let Some(refused) = crate::ui::csrf_refusal(&anon, &f.csrf) {
        return refused;
    }
    let next = safe_next(f.next.as_deref()).to_owned();
    if !session::token_ok(&state, &f.token) {
        tracing::info!("ui: sign-in with a wrong token");
        let mut resp = layout::respond(
            StatusCode::UNAUTHORIZED,
            form(&anon, &next, Some("That is not this GitWeave's API token.")),
        );
        resp.headers_mut().insert(
            header::HeaderName::from_static("x-error-code"),
            http::HeaderValue::from_static(error_code::WRONG_TOKEN),
        );
        return resp;
    }
    state.sessions.remove(&anon.id);
    let Some(signed) = state.sessions.create(true) else {
        return layout::sessions_full();
    };
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(Some(&signed), state.config.ui_secure_cookie),
    );
    resp
}

/// The sign-out form's field.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<GatewayState>,
    Extension(s): Extension<Session>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = crate::ui::csrf_refusal(&s, &f.csrf) {
        return refused;
    }
    state.sessions.remove(&s.id);
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(None, state.config.ui_secure_cookie),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_a_local_path_is_a_place_to_go_after_sign_in() {
        assert_eq!(safe_next(Some("/runs/1?x=2#L3")), "/runs/1?x=2#L3");
        for bad in ["//evil.example", "/\\evil", "https://evil", "", "/a\nb"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
