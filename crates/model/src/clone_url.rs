//! Clone URLs of repos: which kind a URL is (a remote git server or a local path), and how it
//! is shown without its credentials (SPEC §15).
//!
//! The only accepted forms are `https://`, `http://`, `ssh://` and `git://` URLs with a host,
//! scp-like `user@host:path`, and local repositories (`file:///abs/path` or `/abs/path`).
//! Everything else (git's `ext::`/`fd::` transports, relative paths, `-` prefixes that git
//! could take for an option, control characters, percent escapes in a local path) is refused
//! here, before anything is stored. Whether a local path is allowed (under
//! `RUNNER_LOCAL_REPO_ROOT`, a git repository) needs the file system and is checked by the
//! caller on the [`CloneUrl::Local`] path this returns.

use crate::names::quoted;
use std::fmt;

/// Longest clone URL accepted.
pub const MAX_LEN: usize = 2048;

/// The remote schemes git may use; anything else is refused.
pub const REMOTE_SCHEMES: [&str; 4] = ["https", "http", "ssh", "git"];

/// A clone URL that has the shape of one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneUrl {
    /// A git server: `scheme://[userinfo@]host[:port]/path` or scp-like `user@host:path`.
    Remote(String),
    /// A repository on the local file system: the absolute path, as given (neither resolved
    /// nor checked yet; see the module docs).
    Local(String),
}

impl CloneUrl {
    /// Parses a clone URL.
    pub fn parse(raw: &str) -> Result<Self, CloneUrlError> {
        let bad = |why: &'static str| CloneUrlError {
            shown: quoted(&redact(raw)),
            why,
        };
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if raw.len() > MAX_LEN {
            return Err(bad("it is longer than 2048 bytes"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains spaces or control characters"));
        }
        if raw.starts_with('-') {
            return Err(bad("it starts with '-', which git would read as an option"));
        }
        if let Some(path) = raw.strip_prefix("file://") {
            return local(path).map_err(bad);
        }
        if raw.starts_with('/') {
            return local(raw).map_err(bad);
        }
        if let Some((scheme, rest)) = raw.split_once("://") {
            if !REMOTE_SCHEMES.contains(&scheme) {
                return Err(bad(
                    "its scheme is not one of https://, http://, ssh://, git:// or file://",
                ));
            }
            remote_authority(rest).map_err(bad)?;
            return Ok(CloneUrl::Remote(raw.to_owned()));
        }
        scp_like(raw).map_err(bad)?;
        Ok(CloneUrl::Remote(raw.to_owned()))
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        match self {
            CloneUrl::Remote(s) | CloneUrl::Local(s) => s,
        }
    }
}

/// A clone URL that is not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "clone_url {shown} is not accepted: {why}; use an https://, http://, ssh:// or git:// URL, user@host:path, or a local repository (file:///path or /path) under RUNNER_LOCAL_REPO_ROOT"
)]
pub struct CloneUrlError {
    /// The URL, without credentials, quoted and cut short.
    shown: String,
    /// What is wrong with it.
    why: &'static str,
}

/// A local path: absolute, with no percent escape (git would decode it, so the path checked
/// would not be the one cloned).
fn local(path: &str) -> Result<CloneUrl, &'static str> {
    if !path.starts_with('/') {
        return Err("a local repository needs an absolute path (file:///srv/repo.git)");
    }
    if path.contains('%') {
        return Err("a local path must not contain percent escapes");
    }
    Ok(CloneUrl::Local(path.to_owned()))
}

/// `[userinfo@]host[:port]` up to the first `/` (which must be there: a repository path).
fn remote_authority(rest: &str) -> Result<(), &'static str> {
    let end = rest
        .find('/')
        .ok_or("a remote URL needs a path after its host")?;
    let authority = &rest[..end];
    let host_port = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let (host, port) = if host_port.starts_with('[') {
        let close = host_port
            .find(']')
            .ok_or("an IPv6 host needs its closing ']'")?;
        let after = &host_port[close + 1..];
        if !after.is_empty() && !after.starts_with(':') {
            return Err("only a :port may follow an IPv6 host");
        }
        (&host_port[..=close], after.strip_prefix(':'))
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the port after the host must be a number");
    }
    valid_host(host)
}

/// `user@host:path`: git's scp-like syntax (a ':' before any '/').
fn scp_like(raw: &str) -> Result<(), &'static str> {
    const WHAT: &str = "it is neither a URL with a scheme, user@host:path, nor an absolute path";
    let (before, path) = raw.split_once(':').ok_or(WHAT)?;
    if before.contains('/') || path.is_empty() || path.starts_with(':') {
        return Err(WHAT);
    }
    let (user, host) = before.rsplit_once('@').ok_or(WHAT)?;
    if user.is_empty() || user.starts_with('-') {
        return Err("the user in user@host:path must not be empty or start with '-'");
    }
    valid_host(host)
}

/// A host name, an IPv4 address or a bracketed IPv6 address; never starting with '-'.
fn valid_host(host: &str) -> Result<(), &'static str> {
    const WHAT: &str = "its host is not a host name or an IP address";
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ok = !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return if ok { Ok(()) } else { Err(WHAT) };
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['-', '.'])
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok { Ok(()) } else { Err(WHAT) }
}

/// The URL without its credentials, to show in answers and logs: a password becomes `***`
/// (`https://user:***@host/repo.git`); a user without a password is kept for `ssh://` and
/// `git://` (an account name such as `git`) but is `***` for `http(s)://`, where a lone user is
/// often a token; a query string (`?private_token=…`) becomes `?***`. Works on any text, also
/// on values that [`CloneUrl::parse`] would refuse, and never shows more than it was given.
pub fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return redact_scp(raw);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        None => authority.to_owned(),
        Some(at) => {
            let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
            let web = scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http");
            let user = match userinfo.split_once(':') {
                Some((user, _password)) if !user.is_empty() => format!("{user}:***"),
                Some(_) => "***".to_owned(),
                None if web => "***".to_owned(),
                None => userinfo.to_owned(),
            };
            format!("{user}@{host}")
        }
    };
    let tail = match tail.split_once('?') {
        Some((path, _query)) => format!("{path}?***"),
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// scp-like `user:password@host:path` (not valid for git, but never shown with its password).
fn redact_scp(raw: &str) -> String {
    // Only an '@' before the path can end a userinfo.
    let head_end = raw.find('/').unwrap_or(raw.len());
    let Some(at) = raw[..head_end].rfind('@') else {
        return raw.to_owned();
    };
    match raw[..at].split_once(':') {
        Some((user, _password)) => format!("{user}:***{}", &raw[at..]),
        None => raw.to_owned(),
    }
}

/// A clone URL shown without credentials: `Display` redacts.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::{CloneUrl, redact};
    use proptest::prelude::*;

    fn remote(s: &str) -> bool {
        matches!(CloneUrl::parse(s), Ok(CloneUrl::Remote(_)))
    }

    #[test]
    fn accepts_the_remote_forms() {
        for ok in [
            "https://github.com/acme/shop.git",
            "http://127.0.0.1:3000/acme/shop.git",
            "https://user:pw@git.example/shop.git",
            "ssh://git@git.example:2222/acme/shop.git",
            "git://git.example/shop.git",
            "git@github.com:acme/shop.git",
            "https://[::1]:8443/shop.git",
        ] {
            assert!(remote(ok), "{ok} is accepted");
        }
    }

    #[test]
    fn accepts_local_paths_as_local() {
        assert_eq!(
            CloneUrl::parse("file:///srv/git/shop.git"),
            Ok(CloneUrl::Local("/srv/git/shop.git".into()))
        );
        assert_eq!(
            CloneUrl::parse("/srv/git/shop.git"),
            Ok(CloneUrl::Local("/srv/git/shop.git".into()))
        );
    }

    #[test]
    fn refuses_other_transports_and_shapes() {
        for bad in [
            "",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::17",
            "fd::0,1/x",
            "file://host/srv/x.git",
            "file://relative",
            "file:///srv/a%2e%2e/x",
            "ftp://example.com/x.git",
            "HTTPS://example.com/x.git",
            "https://example.com",
            "https:///x.git",
            "https://-oProxyCommand=x/y",
            "ssh://-oProxyCommand=touch%20x/y",
            "git@-oProxyCommand=x:y",
            "-uhttps://x/y",
            "relative/path",
            "./repo",
            "host:path",
            "not a url",
            "https://example.com/a b",
            "https://example.com/a\nb",
            "https://example.com:http/x",
            "C:\\repo",
        ] {
            assert!(CloneUrl::parse(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = CloneUrl::parse("ftp://me:hunter2hunter2@example.com/x").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("me:***@example.com"), "{msg}");
    }

    #[test]
    fn redacts_credentials_and_keeps_the_rest() {
        assert_eq!(
            redact("https://user:s3cret@git.example/shop.git"),
            "https://user:***@git.example/shop.git"
        );
        assert_eq!(
            redact("https://ghp_token@github.com/acme/shop.git"),
            "https://***@github.com/acme/shop.git"
        );
        assert_eq!(
            redact("https://:tok@h/x.git"),
            "https://***@h/x.git",
            "an empty user keeps nothing"
        );
        assert_eq!(
            redact("ssh://git@git.example/shop.git"),
            "ssh://git@git.example/shop.git"
        );
        assert_eq!(
            redact("ssh://git:pw@git.example/shop.git"),
            "ssh://git:***@git.example/shop.git"
        );
        assert_eq!(
            redact("https://h/x.git?private_token=abc"),
            "https://h/x.git?***"
        );
        assert_eq!(
            redact("https://u:p@ss@h/x.git"),
            "https://u:***@h/x.git",
            "the last '@' ends the userinfo"
        );
        assert_eq!(
            redact("git@github.com:acme/shop.git"),
            "git@github.com:acme/shop.git"
        );
        assert_eq!(redact("u:pw@host:path"), "u:***@host:path");
        assert_eq!(redact("file:///srv/x.git"), "file:///srv/x.git");
        assert_eq!(redact("/srv/x.git"), "/srv/x.git");
    }

    fn word() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~-]{1,12}"
    }

    proptest! {
        #[test]
        fn parse_and_redact_never_panic(s in "\\PC{0,80}") {
            let _ = CloneUrl::parse(&s);
            let _ = redact(&s);
        }

        #[test]
        fn a_password_is_never_shown(
            scheme in prop::sample::select(vec!["https", "http", "ssh", "git"]),
            user in word(),
            password in "[A-Za-z0-9!$&'()*+,;=@._~-]{6,20}",
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5})?",
            path in "(/[A-Za-z0-9._-]{1,10}){1,3}",
        ) {
            let url = format!("{scheme}://{user}:{password}@{host}{path}");
            prop_assert_eq!(redact(&url), format!("{scheme}://{user}:***@{host}{path}"));
        }

        #[test]
        fn a_url_without_credentials_is_shown_as_is(
            scheme in prop::sample::select(vec!["https", "http", "ssh", "git"]),
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5})?",
            path in "(/[A-Za-z0-9._-]{1,10}){1,3}",
        ) {
            let url = format!("{scheme}://{host}{path}");
            prop_assert!(remote(&url));
            prop_assert_eq!(redact(&url), url);
        }

        #[test]
        fn redacting_twice_changes_nothing(s in "\\PC{0,80}") {
            let once = redact(&s);
            prop_assert_eq!(redact(&once), once.clone());
        }

        #[test]
        fn whatever_is_accepted_is_a_known_form(s in "[a-z:/@._-]{0,30}") {
            match CloneUrl::parse(&s) {
                Ok(CloneUrl::Local(p)) => prop_assert!(p.starts_with('/')),
                Ok(CloneUrl::Remote(r)) => {
                    prop_assert!(!r.starts_with('-'));
                    let known = super::REMOTE_SCHEMES.iter().any(|sc| r.starts_with(&format!("{sc}://")))
                        || (!r.contains("://") && r.contains('@') && r.contains(':'));
                    prop_assert!(known, "{}", r);
                }
                Err(_) => {}
            }
        }
    }
}
