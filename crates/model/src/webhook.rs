//! Webhook deliveries from git forges (SPEC §7): which provider sent them, whether their
//! signature holds, and what their payload asks for. Pure: header values and the raw body in,
//! decisions out; the HTTP handler and the `gitweave hook deliver` CLI both build on it.
//!
//! - GitHub signs with `X-Hub-Signature-256: sha256=<hex>`, Gitea with `X-Gitea-Signature:
//!   <hex>`, Forgejo with `X-Forgejo-Signature: <hex>` (and Gitea's header too): all are
//!   HMAC-SHA256 of the raw body with the shared secret, checked in constant time.
//! - GitLab sends the secret itself in `X-Gitlab-Token`; it is compared in constant time
//!   (through SHA-256 digests, so not even its length leaks).
//! - A push becomes a run unless it deletes its ref (`after` all zeros). `ping` and every other
//!   event make nothing.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;

mod pull_request;
pub use pull_request::{
    PullRequestDecision, PullRequestRun, decide_merge_request, decide_pull_request,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A forge that sends webhooks: the `{provider}` of `/repos/{repo}/hooks/{provider}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// github.com and GitHub Enterprise.
    GitHub,
    /// Gitea.
    Gitea,
    /// Forgejo (a Gitea fork; it also sends Gitea's headers).
    Forgejo,
    /// gitlab.com and self-managed GitLab.
    GitLab,
}

impl Provider {
    /// Every provider, in the order the docs list them.
    pub const ALL: [Provider; 4] = [
        Provider::GitHub,
        Provider::Gitea,
        Provider::Forgejo,
        Provider::GitLab,
    ];

    /// The path segment and the name stored with deliveries.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::Gitea => "gitea",
            Provider::Forgejo => "forgejo",
            Provider::GitLab => "gitlab",
        }
    }

    /// Parses a path segment (`github`, `gitea`, `forgejo`, `gitlab`).
    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Headers that carry the signature (or GitLab's token); the first one present is used.
    pub const fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Provider::GitHub => &["x-hub-signature-256"],
            Provider::Gitea => &["x-gitea-signature"],
            Provider::Forgejo => &["x-forgejo-signature", "x-gitea-signature"],
            Provider::GitLab => &["x-gitlab-token"],
        }
    }

    /// Headers that name the event; the first one present is used.
    pub const fn event_headers(self) -> &'static [&'static str] {
        match self {
            Provider::GitHub => &["x-github-event"],
            Provider::Gitea => &["x-gitea-event"],
            Provider::Forgejo => &["x-forgejo-event", "x-gitea-event"],
            Provider::GitLab => &["x-gitlab-event"],
        }
    }

    /// Headers that carry the delivery id; the first one present is used. GitLab's
    /// `X-Gitlab-Event-UUID` is missing on old versions: `Idempotency-Key` (stable across
    /// retries) and then `X-Gitlab-Webhook-UUID` (per request) stand in.
    pub const fn delivery_headers(self) -> &'static [&'static str] {
        match self {
            Provider::GitHub => &["x-github-delivery"],
            Provider::Gitea => &["x-gitea-delivery"],
            Provider::Forgejo => &["x-forgejo-delivery", "x-gitea-delivery"],
            Provider::GitLab => &[
                "x-gitlab-event-uuid",
                "idempotency-key",
                "x-gitlab-webhook-uuid",
            ],
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first of `names` that `header` finds with a non-blank value, with that value trimmed.
/// Gitea sends signature headers with an empty value when no secret is set: that counts as
/// missing.
pub fn first_header<'a>(
    names: &'static [&'static str],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Option<(&'static str, &'a str)> {
    names.iter().find_map(|name| {
        header(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| (*name, v))
    })
}

/// Why a delivery is not authentic. Messages say what was wrong, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The repo has no `webhook_secret`: every webhook is refused.
    #[error(
        "this repo has no webhook_secret, so every webhook to it is refused; set one with PUT /api/v1/repos/{{repo}} and give the same secret to the forge"
    )]
    NoSecret,
    /// The signature header is absent or empty.
    #[error("the {header} header is missing; set the webhook's secret in the forge")]
    Missing {
        /// The header expected.
        header: &'static str,
    },
    /// The header is there but is not a hex HMAC-SHA256.
    #[error("the {header} header is not {expected}")]
    Malformed {
        /// The header found.
        header: &'static str,
        /// What it should look like.
        expected: &'static str,
    },
    /// The signature (or token) does not match the body and this repo's secret.
    #[error(
        "the {header} header does not match: the body was signed with another secret (or a previous one), or changed after signing"
    )]
    Mismatch {
        /// The header found.
        header: &'static str,
    },
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    #[expect(
        clippy::expect_used,
        reason = "HMAC takes keys of any length; new_from_slice cannot fail"
    )]
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts any key length")
}

/// Lowercase hex HMAC-SHA256 of `body` with `secret`: the value of `X-Gitea-Signature`, and of
/// `X-Hub-Signature-256` after `sha256=`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    to_hex(&m.finalize().into_bytes())
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Decodes hex (either case); `None` for an odd length or a non-hex digit.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Checks a delivery against the repo's secret. `header` looks a request header up by its
/// lowercase name.
pub fn verify<'a>(
    provider: Provider,
    secret: Option<&str>,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<(), VerifyError> {
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::NoSecret)?;
    let names = provider.signature_headers();
    let Some((name, value)) = first_header(names, header) else {
        return Err(VerifyError::Missing { header: names[0] });
    };
    if provider == Provider::GitLab {
        // Hash both sides so the comparison takes the same time whatever the lengths.
        let given = Sha256::digest(value.as_bytes());
        let wanted = Sha256::digest(secret.as_bytes());
        return if bool::from(given.as_slice().ct_eq(wanted.as_slice())) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch { header: name })
        };
    }
    let hex = match provider {
        Provider::GitHub => value
            .strip_prefix("sha256=")
            .ok_or(VerifyError::Malformed {
                header: name,
                expected: "sha256=<64 hex digits>",
            })?,
        // Gitea's header is bare hex; a `sha256=` prefix (a proxy re-signing GitHub-style)
        // is tolerated.
        _ => value.strip_prefix("sha256=").unwrap_or(value),
    };
    let tag = from_hex(hex)
        .filter(|t| t.len() == 32)
        .ok_or(VerifyError::Malformed {
            header: name,
            expected: "a hex HMAC-SHA256 (64 hex digits)",
        })?;
    let mut m = mac(secret.as_bytes());
    m.update(body);
    m.verify_slice(&tag)
        .map_err(|_| VerifyError::Mismatch { header: name })
}

/// What the event header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A push of branches or tags (GitLab: `Push Hook` and `Tag Push Hook`).
    Push,
    /// GitHub's hello when a hook is created.
    Ping,
    /// A GitHub or Gitea/Forgejo `pull_request` (SPEC §9).
    PullRequest,
    /// A GitLab `Merge Request Hook` (SPEC §9).
    MergeRequest,
    /// Anything else (`pull_request`, `issues`, `Merge Request Hook`, …).
    Other(String),
}

/// Reads the event header's value.
pub fn event_kind(provider: Provider, value: &str) -> EventKind {
    let v = value.trim();
    match provider {
        Provider::GitLab => match v {
            "Push Hook" | "Tag Push Hook" => EventKind::Push,
            "Merge Request Hook" => EventKind::MergeRequest,
            _ => EventKind::Other(v.to_owned()),
        },
        _ => match v {
            "push" => EventKind::Push,
            "ping" => EventKind::Ping,
            "pull_request" => EventKind::PullRequest,
            _ => EventKind::Other(v.to_owned()),
        },
    }
}

/// A push that makes a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The pushed ref, as the payload names it (`refs/heads/main`, `refs/tags/v1`). Data only:
    /// it may hold any character git allows, quotes and `;` included.
    pub git_ref: String,
    /// The ref's old commit (all zeros when it was created), when the payload has one.
    pub before: Option<String>,
    /// The pushed commit: the run's `commit`.
    pub after: String,
    /// The pushed commit's message, when the payload has it (`head_commit`, or the entry of
    /// `commits` whose id is `after`): `[skip ci]` is read from it.
    pub head_message: Option<String>,
}

/// What a delivery asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Make a run.
    Run(Push),
    /// Make a pull request run.
    PullRequest(PullRequestRun),
    /// A branch or tag was deleted: nothing to build.
    Deleted {
        /// The deleted ref.
        git_ref: String,
    },
    /// GitHub's `ping`.
    Ping,
    /// An event that does not start runs.
    Ignored {
        /// Its name, from the event header.
        event: String,
    },
    /// A pull request action that does not start runs (`closed`, …).
    IgnoredAction {
        /// The event's name.
        event: String,
        /// The action.
        action: String,
    },
}

/// Why a body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all (→ 400).
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    /// JSON, but not a push payload (→ 422).
    #[error("the push payload is not usable: {0}")]
    Invalid(String),
}

/// The fields of a push payload GitWeave reads; GitHub, Gitea, Forgejo and GitLab agree on
/// them. Everything else is skipped unread.
#[derive(Debug, Deserialize)]
struct RawPush {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    before: Option<String>,
    after: Option<String>,
    #[serde(default)]
    deleted: Option<bool>,
    head_commit: Option<RawCommit>,
    commits: Option<Vec<RawCommit>>,
}

#[derive(Debug, Deserialize)]
struct RawCommit {
    id: Option<String>,
    message: Option<String>,
}

fn json_error(e: &serde_json::Error) -> PayloadError {
    match e.classify() {
        serde_json::error::Category::Data => PayloadError::Invalid(e.to_string()),
        _ => PayloadError::Malformed(e.to_string()),
    }
}

/// Whether a commit message asks to make no run: it contains `[skip ci]` or `[ci skip]`
/// (in any case), as GitLab, Woodpecker and GitHub Actions read it.
pub fn skips_ci(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("[skip ci]") || lower.contains("[ci skip]")
}

/// True for a sha of only zeros: git's "no commit" (a created ref's `before`, a deleted ref's
/// `after`).
pub fn is_zero_sha(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'0')
}

fn is_sha(s: &str) -> bool {
    (4..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads the body for an event. Every body must be JSON; only pushes are looked into.
pub fn decide(kind: &EventKind, body: &[u8]) -> Result<Decision, PayloadError> {
    match kind {
        EventKind::Push => {}
        EventKind::PullRequest | EventKind::MergeRequest => {
            let d = if *kind == EventKind::PullRequest {
                pull_request::decide_pull_request(body)?
            } else {
                pull_request::decide_merge_request(body)?
            };
            return Ok(match d {
                PullRequestDecision::Run(r) => Decision::PullRequest(r),
                PullRequestDecision::Ignored { action } => Decision::IgnoredAction {
                    event: if *kind == EventKind::PullRequest {
                        "pull_request".into()
                    } else {
                        "Merge Request Hook".into()
                    },
                    action,
                },
            });
        }
        EventKind::Ping => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| json_error(&e))?;
            return Ok(Decision::Ping);
        }
        EventKind::Other(event) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| json_error(&e))?;
            return Ok(Decision::Ignored {
                event: event.clone(),
            });
        }
    }
    let raw: RawPush = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    let git_ref = raw
        .git_ref
        .filter(|r| !r.is_empty())
        .ok_or_else(|| PayloadError::Invalid("it has no \"ref\"".into()))?;
    let after = raw
        .after
        .ok_or_else(|| PayloadError::Invalid("it has no \"after\" commit".into()))?;
    if !is_sha(&after) {
        return Err(PayloadError::Invalid(format!(
            "\"after\" is {after:?}, not a commit sha"
        )));
    }
    if is_zero_sha(&after) || raw.deleted == Some(true) {
        return Ok(Decision::Deleted { git_ref });
    }
    let head_message = raw
        .head_commit
        .filter(|c| c.id.as_deref().is_none_or(|id| id == after))
        .and_then(|c| c.message)
        .or_else(|| {
            raw.commits?
                .into_iter()
                .find(|c| c.id.as_deref() == Some(after.as_str()))
                .and_then(|c| c.message)
        });
    Ok(Decision::Run(Push {
        git_ref,
        before: raw.before,
        after,
        head_message,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect()
    }

    fn check(
        p: Provider,
        secret: Option<&str>,
        h: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        verify(p, secret, |n| h.get(n).map(String::as_str), body)
    }

    #[test]
    fn the_rfc_4231_test_vector_signs() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn github_needs_the_sha256_prefix_and_the_right_secret() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = sign(b"s3cret", body);
        let ok = headers(&[("X-Hub-Signature-256", &format!("sha256={sig}"))]);
        assert_eq!(check(Provider::GitHub, Some("s3cret"), &ok, body), Ok(()));
        let upper = headers(&[(
            "X-Hub-Signature-256",
            &format!("sha256={}", sig.to_uppercase()),
        )]);
        assert_eq!(
            check(Provider::GitHub, Some("s3cret"), &upper, body),
            Ok(())
        );
        let bare = headers(&[("X-Hub-Signature-256", &sig)]);
        assert!(matches!(
            check(Provider::GitHub, Some("s3cret"), &bare, body),
            Err(VerifyError::Malformed { .. })
        ));
        assert_eq!(
            check(Provider::GitHub, Some("other"), &ok, body),
            Err(VerifyError::Mismatch {
                header: "x-hub-signature-256"
            })
        );
        assert_eq!(
            check(
                Provider::GitHub,
                Some("s3cret"),
                &ok,
                b"{\"ref\":\"refs/heads/evil\"}"
            ),
            Err(VerifyError::Mismatch {
                header: "x-hub-signature-256"
            })
        );
    }

    #[test]
    fn missing_empty_and_truncated_signatures_are_refused() {
        let body = b"{}";
        assert_eq!(
            check(Provider::Gitea, Some("k"), &headers(&[]), body),
            Err(VerifyError::Missing {
                header: "x-gitea-signature"
            })
        );
        // Gitea sends an empty header when the hook has no secret.
        assert_eq!(
            check(
                Provider::Gitea,
                Some("k"),
                &headers(&[("X-Gitea-Signature", "")]),
                body
            ),
            Err(VerifyError::Missing {
                header: "x-gitea-signature"
            })
        );
        let short = &sign(b"k", body)[..62];
        assert!(matches!(
            check(
                Provider::Gitea,
                Some("k"),
                &headers(&[("X-Gitea-Signature", short)]),
                body
            ),
            Err(VerifyError::Malformed { .. })
        ));
        // GitHub's header does not count for Gitea.
        let gh = headers(&[(
            "X-Hub-Signature-256",
            &format!("sha256={}", sign(b"k", body)),
        )]);
        assert!(matches!(
            check(Provider::Gitea, Some("k"), &gh, body),
            Err(VerifyError::Missing { .. })
        ));
    }

    #[test]
    fn a_repo_without_a_secret_refuses_everything() {
        let body = b"{}";
        let h = headers(&[("X-Gitea-Signature", &sign(b"", body))]);
        assert_eq!(
            check(Provider::Gitea, None, &h, body),
            Err(VerifyError::NoSecret)
        );
        assert_eq!(
            check(Provider::Gitea, Some(""), &h, body),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn forgejo_prefers_its_own_header_and_falls_back_to_giteas() {
        let body = b"{\"a\":1}";
        let good = sign(b"k", body);
        let bad = sign(b"other", body);
        let own = headers(&[("X-Forgejo-Signature", &good), ("X-Gitea-Signature", &bad)]);
        assert_eq!(check(Provider::Forgejo, Some("k"), &own, body), Ok(()));
        let wrong_own = headers(&[("X-Forgejo-Signature", &bad), ("X-Gitea-Signature", &good)]);
        assert!(check(Provider::Forgejo, Some("k"), &wrong_own, body).is_err());
        let gitea_only = headers(&[("X-Gitea-Signature", &good)]);
        assert_eq!(
            check(Provider::Forgejo, Some("k"), &gitea_only, body),
            Ok(())
        );
    }

    #[test]
    fn gitlab_compares_the_token() {
        let h = headers(&[("X-Gitlab-Token", "tok")]);
        assert_eq!(check(Provider::GitLab, Some("tok"), &h, b"x"), Ok(()));
        assert_eq!(
            check(Provider::GitLab, Some("tok2"), &h, b"x"),
            Err(VerifyError::Mismatch {
                header: "x-gitlab-token"
            })
        );
        assert!(matches!(
            check(Provider::GitLab, Some("tok"), &headers(&[]), b"x"),
            Err(VerifyError::Missing { .. })
        ));
    }

    #[test]
    fn messages_name_the_header_and_never_the_secret() {
        let body = b"{}";
        let h = headers(&[("X-Hub-Signature-256", "sha256=00")]);
        let e = check(Provider::GitHub, Some("hunter2"), &h, body).unwrap_err();
        assert!(e.to_string().contains("x-hub-signature-256"), "{e}");
        let h = headers(&[("X-Gitlab-Token", "nope")]);
        let e = check(Provider::GitLab, Some("hunter2"), &h, body).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn providers_and_events_parse() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("bitbucket"), None);
        assert_eq!(event_kind(Provider::GitHub, "push"), EventKind::Push);
        assert_eq!(event_kind(Provider::Gitea, "ping"), EventKind::Ping);
        assert_eq!(
            event_kind(Provider::GitLab, "Tag Push Hook"),
            EventKind::Push
        );
        assert_eq!(
            event_kind(Provider::GitLab, "Merge Request Hook"),
            EventKind::MergeRequest
        );
        assert_eq!(
            event_kind(Provider::GitHub, "pull_request"),
            EventKind::PullRequest
        );
        assert_eq!(
            event_kind(Provider::GitHub, "issues"),
            EventKind::Other("issues".into())
        );
    }

    #[test]
    fn pushes_deletions_and_other_events() {
        let push = br#"{"ref":"refs/tags/v1","before":"0000000000000000000000000000000000000000","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","extra":[1,2,{"x":null}]}"#;
        assert_eq!(
            decide(&EventKind::Push, push),
            Ok(Decision::Run(Push {
                git_ref: "refs/tags/v1".into(),
                before: Some("0000000000000000000000000000000000000000".into()),
                after: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
                head_message: None,
            }))
        );
        let with_message = br#"{"ref":"refs/heads/m","after":"6113728f","commits":[{"id":"1111","message":"a"},{"id":"6113728f","message":"fix [skip ci]"}]}"#;
        let Ok(Decision::Run(p)) = decide(&EventKind::Push, with_message) else {
            panic!("a push");
        };
        assert_eq!(p.head_message.as_deref(), Some("fix [skip ci]"));
        assert!(skips_ci("Fix\n\n[CI SKIP]") && skips_ci("[skip ci] x") && !skips_ci("skip ci"));
        let deleted =
            br#"{"ref":"refs/heads/x","after":"0000000000000000000000000000000000000000"}"#;
        assert_eq!(
            decide(&EventKind::Push, deleted),
            Ok(Decision::Deleted {
                git_ref: "refs/heads/x".into()
            })
        );
        let sha256_deleted = format!(r#"{{"ref":"refs/heads/x","after":"{}"}}"#, "0".repeat(64));
        assert!(matches!(
            decide(&EventKind::Push, sha256_deleted.as_bytes()),
            Ok(Decision::Deleted { .. })
        ));
        assert_eq!(
            decide(&EventKind::Ping, b"{\"zen\":\"z\"}"),
            Ok(Decision::Ping)
        );
        assert_eq!(
            decide(&EventKind::Other("issues".into()), b"[]"),
            Ok(Decision::Ignored {
                event: "issues".into()
            })
        );
    }

    #[test]
    fn hostile_refs_are_kept_as_data() {
        let body = br#"{"ref":"refs/heads/zzz\";echo${IFS}\"hello\";#","after":"abcdef1"}"#;
        let Ok(Decision::Run(p)) = decide(&EventKind::Push, body) else {
            panic!("a push");
        };
        assert_eq!(p.git_ref, "refs/heads/zzz\";echo${IFS}\"hello\";#");
    }

    #[test]
    fn malformed_and_invalid_bodies_are_told_apart() {
        for bad in [&b""[..], b"{", b"not json", b"{\"ref\":}", b"\xff"] {
            assert!(
                matches!(
                    decide(&EventKind::Push, bad),
                    Err(PayloadError::Malformed(_))
                ),
                "{bad:?}"
            );
            assert!(matches!(
                decide(&EventKind::Ping, bad),
                Err(PayloadError::Malformed(_))
            ));
            assert!(matches!(
                decide(&EventKind::Other("x".into()), bad),
                Err(PayloadError::Malformed(_))
            ));
        }
        for invalid in [
            &b"[]"[..],
            b"{}",
            b"{\"ref\":\"refs/heads/m\"}",
            b"{\"ref\":\"\",\"after\":\"abcd\"}",
            b"{\"ref\":1,\"after\":\"abcd\"}",
            b"{\"ref\":\"r\",\"after\":\"xyz!\"}",
            b"{\"ref\":\"r\",\"after\":\"abc\"}",
        ] {
            assert!(
                matches!(
                    decide(&EventKind::Push, invalid),
                    Err(PayloadError::Invalid(_))
                ),
                "{}",
                String::from_utf8_lossy(invalid)
            );
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(to_hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(from_hex("0"), None);
        assert_eq!(from_hex("zz"), None);
    }

    proptest! {
        #[test]
        fn what_is_signed_verifies_for_every_hmac_provider(
            secret in "[ -~]{1,40}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let sig = sign(secret.as_bytes(), &body);
            let gh = headers(&[("X-Hub-Signature-256", &format!("sha256={sig}"))]);
            prop_assert_eq!(check(Provider::GitHub, Some(&secret), &gh, &body), Ok(()));
            let gt = headers(&[("X-Gitea-Signature", &sig)]);
            prop_assert_eq!(check(Provider::Gitea, Some(&secret), &gt, &body), Ok(()));
            let fj = headers(&[("X-Forgejo-Signature", &sig)]);
            prop_assert_eq!(check(Provider::Forgejo, Some(&secret), &fj, &body), Ok(()));
        }

        #[test]
        fn any_change_to_the_body_or_the_secret_is_caught(
            secret in "[ -~]{1,40}",
            other in "[ -~]{1,40}",
            body in proptest::collection::vec(any::<u8>(), 1..512),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let sig = sign(secret.as_bytes(), &body);
            let h = headers(&[("X-Gitea-Signature", &sig)]);
            let mut changed = body.clone();
            let i = at.index(changed.len());
            changed[i] ^= flip;
            prop_assert!(check(Provider::Gitea, Some(&secret), &h, &changed).is_err());
            if other != secret {
                prop_assert!(check(Provider::Gitea, Some(&other), &h, &body).is_err());
            }
        }

        #[test]
        fn decide_never_panics_and_never_runs_a_deletion(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            r in "[ -~]{0,40}",
            after in "[0-9a-f]{0,70}",
        ) {
            let _ = decide(&EventKind::Push, &body);
            let json = serde_json::json!({ "ref": r, "after": after }).to_string();
            if let Ok(Decision::Run(p)) = decide(&EventKind::Push, json.as_bytes()) {
                prop_assert!(!is_zero_sha(&p.after));
                prop_assert!(is_sha(&p.after));
                prop_assert_eq!(p.git_ref, r);
            }
        }

        #[test]
        fn hex_decodes_what_it_encodes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(from_hex(&to_hex(&bytes)), Some(bytes));
        }
    }
}
