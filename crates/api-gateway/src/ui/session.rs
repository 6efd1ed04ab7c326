//! Browser sessions of the web UI (SPEC §14): an opaque random id in an `HttpOnly;
//! SameSite=Strict` cookie (never the API token), a CSRF token per session that every POST
//! form carries, and the middleware that sends a visitor without a signed-in session to
//! `/login` when `GITWEAVE_API_TOKEN` is set.
//!
//! Sessions live in the gateway's memory: a restart signs everyone out, which is the price of
//! keeping no session store. Every visitor gets a session on its first page (it carries the
//! CSRF token of the login form itself); the store is capped, and when it is full, expired
//! sessions go first and then the oldest anonymous ones, so anonymous visits cannot push out
//! signed-in users.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, header};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

use crate::state::GatewayState;

/// The cookie's name.
pub const COOKIE: &str = "gw_session";
/// How long a signed-in session lasts.
pub const SIGNED_IN_FOR: Duration = Duration::from_secs(12 * 3600);
/// How long an anonymous session (a login form not yet sent) lasts.
pub const ANONYMOUS_FOR: Duration = Duration::from_secs(3600);
/// Sessions kept at most.
pub const MAX_SESSIONS: usize = 10_000;

/// What a request knows about its visitor.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie value.
    pub id: String,
    /// The token every POST form of this session must carry.
    pub csrf: String,
    /// Signed in with the API token (always true when no token is configured).
    pub signed_in: bool,
}

impl Session {
    /// Whether `sent` is this session's CSRF token (constant-time).
    pub fn csrf_ok(&self, sent: &str) -> bool {
        !sent.is_empty() && bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

#[derive(Debug, Clone)]
struct Stored {
    csrf: String,
    signed_in: bool,
    expires: Instant,
}

/// The sessions of this gateway.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Stored>>,
}

fn random_hex() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live session of `id`, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let now = Instant::now();
        match map.get(id) {
            Some(s) if s.expires > now => Some(Session {
                id: id.to_owned(),
                csrf: s.csrf.clone(),
                signed_in: s.signed_in,
            }),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// A new session; `None` only when the store is full of signed-in sessions.
    pub fn create(&self, signed_in: bool) -> Option<Session> {
        let mut map = self.lock();
        let now = Instant::now();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            // The oldest anonymous sessions make room (the earliest to expire).
            let mut anonymous: Vec<(Instant, String)> = map
                .iter()
                .filter(|(_, s)| !s.signed_in)
                .map(|(k, s)| (s.expires, k.clone()))
                .collect();
            anonymous.sort();
            let excess = map.len() + 1 - MAX_SESSIONS;
            for (_, k) in anonymous.into_iter().take(excess) {
                map.remove(&k);
            }
        }
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        let id = random_hex();
        let csrf = random_hex();
        let life = if signed_in {
            SIGNED_IN_FOR
        } else {
            ANONYMOUS_FOR
        };
        map.insert(
            id.clone(),
            Stored {
                csrf: csrf.clone(),
                signed_in,
                expires: now + life,
            },
        );
        Some(Session {
            id,
            csrf,
            signed_in,
        })
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The session id of the request's cookie, if it sends one.
pub fn cookie_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value for `session`, or one that deletes the cookie.
pub fn set_cookie(session: Option<&Session>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = match session {
        Some(s) => {
            let age = if s.signed_in {
                SIGNED_IN_FOR
            } else {
                ANONYMOUS_FOR
            };
            format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                s.id,
                age.as_secs()
            )
        }
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    // Only hex and fixed text: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether this gateway asks for sign-in.
pub fn sign_in_required(state: &GatewayState) -> bool {
    state.config.api_token.is_some()
}

/// Whether `token` is the API token (constant-time).
pub fn token_ok(state: &GatewayState, token: &str) -> bool {
    state
        .config
        .api_token
        .as_deref()
        .is_some_and(|t| bool::from(token.trim().as_bytes().ct_eq(t.as_bytes())))
}

/// Middleware of every UI route but `/login` and the static files: puts the [`Session`] in
/// the request's extensions, making one (and setting its cookie) for a new visitor when no
/// sign-in is needed; a visitor not signed in is sent to `/login` (a GET) or refused (401).
pub async fn require(State(state): State<GatewayState>, mut req: Request, next: Next) -> Response {
    let existing = cookie_id(req.headers()).and_then(|id| state.sessions.get(id));
    let needs_sign_in = sign_in_required(&state);
    let (session, fresh) = match existing {
        Some(s) if s.signed_in || !needs_sign_in => (s, false),
        _ if needs_sign_in => {
            if req.method() == http::Method::GET {
                let next = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let to = format!("/login?next={}", crate::ui::query_escape(next));
                return Redirect::to(&to).into_response();
            }
            return crate::ui::layout::refused(
                http::StatusCode::UNAUTHORIZED,
                gitweave_api::error_code::UNAUTHENTICATED,
                "sign in first: your session ended or was never started",
            );
        }
        _ => match state.sessions.create(true) {
            Some(s) => (s, true),
            None => return crate::ui::layout::sessions_full(),
        },
    };
    req.extensions_mut().insert(session.clone());
    let mut resp = next.run(req).await;
    if fresh {
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(Some(&session), state.config.ui_secure_cookie),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::{COOKIE, MAX_SESSIONS, Sessions, cookie_id, set_cookie};
    use http::{HeaderMap, HeaderValue, header};

    #[test]
    fn the_cookie_is_http_only_same_site_strict_and_secure_when_asked() {
        let sessions = Sessions::default();
        let s = sessions.create(true).expect("room");
        let v = set_cookie(Some(&s), true);
        let v = v.to_str().expect("ascii");
        assert!(v.starts_with(&format!("{COOKIE}={}", s.id)));
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(v.contains(part), "{v}");
        }
        assert!(
            !set_cookie(Some(&s), false)
                .to_str()
                .unwrap_or("")
                .contains("Secure")
        );
        assert_ne!(s.id, s.csrf);
        assert!(s.csrf_ok(&s.csrf.clone()));
        assert!(!s.csrf_ok(""));
        assert!(!s.csrf_ok("00"));
    }

    #[test]
    fn only_a_well_formed_cookie_is_read() {
        let mut h = HeaderMap::new();
        let id = "a".repeat(64);
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={id}")).expect("header"),
        );
        assert_eq!(cookie_id(&h), Some(id.as_str()));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("gw_session=../../etc"),
        );
        assert_eq!(cookie_id(&h), None);
    }

    #[test]
    fn a_full_store_drops_anonymous_sessions_before_signed_in_ones() {
        let sessions = Sessions::default();
        let signed = sessions.create(true).expect("room");
        for _ in 0..MAX_SESSIONS {
            assert!(sessions.create(false).is_some());
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(
            sessions.get(&signed.id).is_some(),
            "the signed-in one stays"
        );
        sessions.remove(&signed.id);
        assert!(sessions.get(&signed.id).is_none());
    }
}
