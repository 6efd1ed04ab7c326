//! The request path, parsed once into what the gateway may forward (SPEC §15).
//!
//! The gateway decides two things from a path: whether the request may go without the API
//! token (exactly the four webhook receivers) and where it goes upstream. Both decisions are
//! made on the [`PublicPath`] this module returns, and the upstream URL is rebuilt from its
//! segments, never pasted from the raw path. So nothing a URL parser would rewrite is
//! accepted: the `url` crate (what reqwest sends with) turns `\` into `/` and resolves `.`, `..`,
//! `%2e` and `%2E%2e` segments, and pipeline-svc's router decodes `%2F` inside a segment;
//! any of those would let one form of a path be checked and another be served.
//!
//! Accepted: `/api/v1/` followed by one or more non-empty segments of RFC 3986 `pchar`s
//! (unreserved, sub-delims, `:`, `@` and `%XX` escapes), none of which is `.` or `..`, and no
//! escape of `/`, `\` or `.`. Other escapes are data and stay as received. Pure: no I/O.

use gitweave_model::webhook::Provider;
use http::Method;

/// What every proxied path starts with.
pub const PREFIX: &str = "/api/v1/";

/// A path under `/api/v1/` that no URL parser rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPath {
    /// The segments after `/api/v1/`, percent-encoded as received; never empty, never a dot
    /// segment.
    segments: Vec<String>,
}

/// Who may send a request: decided from the method and the parsed path only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `POST /api/v1/repos/{repo}/hooks/{provider}`: the forge signs the delivery itself
    /// (SPEC §7), so no API token, and the webhook body limit.
    Webhook(Provider),
    /// Everything else: the API token when one is set, and the ordinary body limit.
    Api,
}

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not under `/api/v1/`: the gateway serves nothing else there (the runner protocol,
    /// `/internal/v1`, is pipeline-svc's alone).
    #[error("no route for this path: the gateway serves /api/v1/…, /healthz, /readyz and /metrics")]
    NotPublic,
    /// An empty segment (`//`, or a trailing `/`).
    #[error("path segment {position} is empty (a doubled or trailing '/')")]
    EmptySegment {
        /// 1-based, counted after `/api/v1/`.
        position: usize,
    },
    /// `.` or `..` as a whole segment.
    #[error("path segment {position} is a dot segment ('.' or '..'); send the resolved path")]
    DotSegment {
        /// 1-based, counted after `/api/v1/`.
        position: usize,
    },
    /// A literal backslash.
    #[error("path segment {position} contains '\\'")]
    Backslash {
        /// 1-based, counted after `/api/v1/`.
        position: usize,
    },
    /// `%2F`, `%5C` or `%2E` (any case): a separator or dot a parser could decode.
    #[error("path segment {position} contains {escape}, an encoded '/', '\\' or '.'")]
    EncodedSeparator {
        /// 1-based, counted after `/api/v1/`.
        position: usize,
        /// The escape as sent.
        escape: String,
    },
    /// A `%` not followed by two hex digits.
    #[error("path segment {position} has a '%' that does not start a %XX escape")]
    BadEscape {
        /// 1-based, counted after `/api/v1/`.
        position: usize,
    },
    /// A byte outside RFC 3986's `pchar` (for example a space, `"`, `<`, `{` or non-ASCII);
    /// percent-encode it.
    #[error("path segment {position} contains {byte:?}, which must be percent-encoded")]
    Forbidden {
        /// 1-based, counted after `/api/v1/`.
        position: usize,
        /// The offending character.
        byte: char,
    },
}

/// Parses a request's path (without its query).
pub fn parse(path: &str) -> Result<PublicPath, PathError> {
    let rest = path.strip_prefix(PREFIX).ok_or(PathError::NotPublic)?;
    let segments = rest
        .split('/')
        .enumerate()
        .map(|(i, segment)| check_segment(i + 1, segment).map(|()| segment.to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PublicPath { segments })
}

fn check_segment(position: usize, segment: &str) -> Result<(), PathError> {
    match segment {
        "" => return Err(PathError::EmptySegment { position }),
        "." | ".." => return Err(PathError::DotSegment { position }),
        _ => {}
    }
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::Backslash { position }),
            b'%' => {
                let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                    return Err(PathError::BadEscape { position });
                };
                let (Some(hi), Some(lo)) = (hex(hi), hex(lo)) else {
                    return Err(PathError::BadEscape { position });
                };
                if matches!(hi << 4 | lo, b'/' | b'\\' | b'.') {
                    return Err(PathError::EncodedSeparator {
                        position,
                        escape: segment[i..i + 3].to_owned(),
                    });
                }
                i += 3;
            }
            b if is_pchar(b) => i += 1,
            _ => {
                let byte = segment[i..].chars().next().unwrap_or('\u{fffd}');
                return Err(PathError::Forbidden { position, byte });
            }
        }
    }
    Ok(())
}

/// RFC 3986 `pchar` without `%` (escapes are checked on their own): unreserved, sub-delims,
/// `:` and `@`.
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl PublicPath {
    /// The segments after `/api/v1/`, percent-encoded as received.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path to request upstream: `/api/v1/` and the segments joined by `/` (equal to the
    /// path that was parsed).
    pub fn upstream_path(&self) -> String {
        let mut path = String::from(PREFIX);
        path.push_str(&self.segments.join("/"));
        path
    }

    /// Whether `method` on this path is one of the four webhook receivers: exactly
    /// `POST /api/v1/repos/{repo}/hooks/{github|gitea|forgejo|gitlab}`.
    pub fn access(&self, method: &Method) -> Access {
        match self.segments.as_slice() {
            [repos, _repo, hooks, provider]
                if method == Method::POST && repos == "repos" && hooks == "hooks" =>
            {
                Provider::parse(provider).map_or(Access::Api, Access::Webhook)
            }
            _ => Access::Api,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Access, PREFIX, PathError, parse};
    use gitweave_model::webhook::Provider;
    use http::Method;
    use proptest::prelude::*;

    fn err(path: &str) -> PathError {
        parse(path).expect_err(path)
    }

    #[test]
    fn ordinary_api_paths_are_kept_as_sent() {
        for path in [
            "/api/v1/repos",
            "/api/v1/repos/my-repo.v2/pipelines/runs",
            "/api/v1/jobs/0193a2b4-0000-7000-8000-000000000000/logs/raw",
            "/api/v1/templates/a%20b",
            "/api/v1/repos/x/templates/name~1:@!$&'()*+,;=",
            "/api/v1/repos/...",
            "/api/v1/repos/.hidden",
            "/api/v1/repos/%25",
        ] {
            let p = parse(path).expect(path);
            assert_eq!(p.upstream_path(), path);
            assert_eq!(p.access(&Method::POST), Access::Api, "{path}");
        }
    }

    #[test]
    fn nothing_outside_api_v1_is_public() {
        for path in [
            "",
            "/",
            "/api/v1",
            "/api/v2/repos",
            "/internal/v1/runners/register",
            "//api/v1/repos",
            "/API/v1/repos",
            "/api/v1\\repos",
            "/healthz",
        ] {
            assert_eq!(err(path), PathError::NotPublic, "{path:?}");
        }
    }

    #[test]
    fn anything_a_url_parser_would_rewrite_is_refused() {
        let cases: &[(&str, PathError)] = &[
            ("/api/v1/", PathError::EmptySegment { position: 1 }),
            ("/api/v1//repos", PathError::EmptySegment { position: 1 }),
            ("/api/v1/repos/", PathError::EmptySegment { position: 2 }),
            (
                "/api/v1/repos/x/hooks/..",
                PathError::DotSegment { position: 4 },
            ),
            ("/api/v1/./repos", PathError::DotSegment { position: 1 }),
            (
                "/api/v1/repos/x/hooks/..\\..\\internal",
                PathError::Backslash { position: 4 },
            ),
            (
                "/api/v1/repos/x/hooks/%2e%2e",
                PathError::EncodedSeparator {
                    position: 4,
                    escape: "%2e".into(),
                },
            ),
            (
                "/api/v1/repos/x/hooks/.%2E",
                PathError::EncodedSeparator {
                    position: 4,
                    escape: "%2E".into(),
                },
            ),
            (
                "/api/v1/repos/..%2F..%2Finternal",
                PathError::EncodedSeparator {
                    position: 2,
                    escape: "%2F".into(),
                },
            ),
            (
                "/api/v1/repos/a%2fb",
                PathError::EncodedSeparator {
                    position: 2,
                    escape: "%2f".into(),
                },
            ),
            (
                "/api/v1/repos/a%5Cb",
                PathError::EncodedSeparator {
                    position: 2,
                    escape: "%5C".into(),
                },
            ),
            (
                "/api/v1/repos/a%5cb",
                PathError::EncodedSeparator {
                    position: 2,
                    escape: "%5c".into(),
                },
            ),
            ("/api/v1/repos/a%", PathError::BadEscape { position: 2 }),
            ("/api/v1/repos/a%2", PathError::BadEscape { position: 2 }),
            ("/api/v1/repos/a%zz", PathError::BadEscape { position: 2 }),
            (
                "/api/v1/repos/a b",
                PathError::Forbidden {
                    position: 2,
                    byte: ' ',
                },
            ),
            (
                "/api/v1/repos/{x}",
                PathError::Forbidden {
                    position: 2,
                    byte: '{',
                },
            ),
            (
                "/api/v1/repos/é",
                PathError::Forbidden {
                    position: 2,
                    byte: 'é',
                },
            ),
            (
                "/api/v1/repos/a?b",
                PathError::Forbidden {
                    position: 2,
                    byte: '?',
                },
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(&err(path), expected, "{path:?}");
        }
    }

    #[test]
    fn a_webhook_is_exactly_post_to_a_known_provider() {
        for provider in Provider::ALL {
            let path = format!("/api/v1/repos/r/hooks/{}", provider.as_str());
            let p = parse(&path).expect("webhook path");
            assert_eq!(p.access(&Method::POST), Access::Webhook(provider));
            for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
                assert_eq!(p.access(&method), Access::Api, "{method} {path}");
            }
        }
        for path in [
            "/api/v1/repos/r/hooks/github/x",
            "/api/v1/repos/r/hooks/bitbucket",
            "/api/v1/repos/r/hooks/GitHub",
            "/api/v1/repos/r/hooks/%67ithub",
            "/api/v1/repos/r/hook/github",
            "/api/v1/repo/r/hooks/github",
            "/api/v1/x/repos/r/hooks/github",
            "/api/v1/repos/hooks/github",
        ] {
            let p = parse(path).expect(path);
            assert_eq!(p.access(&Method::POST), Access::Api, "{path}");
        }
    }

    /// Decodes every `%XX` once, as a server behind the gateway might.
    fn decode(segment: &str) -> Vec<u8> {
        let b = segment.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%'
                && let Some(v) = segment
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        out
    }

    /// A segment from bytes that matter to URL parsers: dots, slashes, backslashes, escapes
    /// of them, other escapes, and ordinary characters.
    fn tricky_segment() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("/".to_owned()),
            Just("\\".to_owned()),
            Just("%".to_owned()),
            Just("%2e".to_owned()),
            Just("%2E".to_owned()),
            Just("%2f".to_owned()),
            Just("%2F".to_owned()),
            Just("%5c".to_owned()),
            Just("%5C".to_owned()),
            Just("%25".to_owned()),
            Just("%20".to_owned()),
            Just("?".to_owned()),
            Just("#".to_owned()),
            "[a-z0-9~:@!$&'()*+,;=_-]{1,3}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        /// Whatever is accepted rebuilds to exactly the path parsed, and the `url` crate (what
        /// reqwest sends) leaves that path as it is.
        #[test]
        fn every_accepted_path_rebuilds_to_itself(segments in proptest::collection::vec(tricky_segment(), 0..6)) {
            let path = format!("{PREFIX}{}", segments.join("/"));
            if let Ok(p) = parse(&path) {
                prop_assert_eq!(p.upstream_path(), path.clone());
                let url = url::Url::parse(&format!("http://127.0.0.1:8081{}", p.upstream_path()))
                    .expect("an accepted path makes a URL");
                prop_assert_eq!(url.path(), path.as_str());
                prop_assert!(url.query().is_none());
            }
        }

        /// Nothing accepted holds a dot segment, a backslash or a slash inside a segment, even
        /// after its escapes are decoded.
        #[test]
        fn nothing_accepted_decodes_to_a_separator_or_a_dot_segment(segments in proptest::collection::vec(tricky_segment(), 0..6)) {
            let path = format!("{PREFIX}{}", segments.join("/"));
            if let Ok(p) = parse(&path) {
                prop_assert!(!p.segments().is_empty());
                for s in p.segments() {
                    let decoded = decode(s);
                    prop_assert!(!decoded.is_empty());
                    prop_assert!(decoded != b"." && decoded != b"..", "{s:?}");
                    prop_assert!(!decoded.contains(&b'/') && !decoded.contains(&b'\\'), "{s:?}");
                }
            }
        }

        /// A webhook is exactly the four POST forms, whatever else the path holds.
        #[test]
        fn a_webhook_is_exactly_the_four_forms(
            segments in proptest::collection::vec(prop_oneof![
                Just("repos".to_owned()), Just("hooks".to_owned()), Just("github".to_owned()),
                Just("gitlab".to_owned()), Just("gitea".to_owned()), Just("forgejo".to_owned()),
                "[a-z]{1,4}",
            ], 1..7),
            post in any::<bool>(),
        ) {
            let path = format!("{PREFIX}{}", segments.join("/"));
            let method = if post { Method::POST } else { Method::GET };
            let p = parse(&path).expect("plain segments are accepted");
            let expected = match segments.as_slice() {
                [a, _, c, d] if post && a == "repos" && c == "hooks" => Provider::parse(d),
                _ => None,
            };
            prop_assert_eq!(p.access(&method), expected.map_or(Access::Api, Access::Webhook));
        }
    }
}
