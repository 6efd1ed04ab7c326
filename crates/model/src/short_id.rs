//! Short ids: a run or job named by part of its UUID, as `git` names a commit by a prefix.
//!
//! Ids are UUIDv7: the first 12 hex digits are a millisecond timestamp, so every id made in
//! the same ~65 s shares its first 8 digits, and the jobs of one run share their first 12 or
//! more. Their last 8 digits are random (uuid's v7 context fills the 32 bits after its 42-bit
//! counter from the RNG), so that is the short id printed ([`short`]). A [`ShortId`] is
//! matched against both ends: an id *starts* with it (the prefix the issue asks for) or
//! *ends* with it (the printed short id). The server resolves it; more than one match is a
//! `409 ambiguous` naming the candidates.

use uuid::Uuid;

/// Fewest hex digits a short id may have.
pub const MIN_DIGITS: usize = 8;

/// The short form printed for an id: its last 8 hex digits.
pub fn short(id: Uuid) -> String {
    let s = id.simple().to_string();
    s[s.len() - MIN_DIGITS..].to_owned()
}

/// What a path segment that names a run or job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdRef {
    /// A whole UUID.
    Full(Uuid),
    /// Part of one: 8 to 31 hex digits.
    Short(ShortId),
}

/// 8 to 31 lowercase hex digits (dashes, as in a UUID's text, are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortId(String);

/// Why a segment names no id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdRefError {
    /// Not hex, too short or too long.
    #[error(
        "{0:?} is neither an id nor a short id (at least {MIN_DIGITS} hex digits of one, e.g. 1b2c3d4e)"
    )]
    Malformed(String),
}

impl IdRef {
    /// Parses a path segment: a UUID in any of its text forms, or 8 to 31 hex digits.
    pub fn parse(raw: &str) -> Result<Self, IdRefError> {
        let bad = || IdRefError::Malformed(raw.chars().take(80).collect());
        if let Ok(id) = Uuid::parse_str(raw) {
            return Ok(IdRef::Full(id));
        }
        let hex: String = raw.chars().filter(|c| *c != '-').collect();
        if hex.len() < MIN_DIGITS
            || hex.len() >= 32
            || raw.starts_with('-')
            || raw.ends_with('-')
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad());
        }
        Ok(IdRef::Short(ShortId(hex.to_ascii_lowercase())))
    }
}

impl ShortId {
    /// The hex digits, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The smallest and largest UUID that start with these digits (for an index range scan).
    pub fn prefix_range(&self) -> (Uuid, Uuid) {
        let pad = |c: char| {
            let mut s = self.0.clone();
            while s.len() < 32 {
                s.push(c);
            }
            // 32 hex digits always parse; the fallback is never taken.
            u128::from_str_radix(&s, 16).map_or(Uuid::nil(), Uuid::from_u128)
        };
        (pad('0'), pad('f'))
    }

    /// The last 8 digits, which an id ending with these digits ends with in its text form
    /// (`right(id::text, 8)`, indexed).
    pub fn last8(&self) -> &str {
        &self.0[self.0.len() - MIN_DIGITS..]
    }

    /// Whether `id` starts or ends with these digits: what the server's query selects.
    pub fn matches(&self, id: Uuid) -> bool {
        let s = id.simple().to_string();
        s.starts_with(&self.0) || s.ends_with(&self.0)
    }
}

impl std::fmt::Display for ShortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{IdRef, IdRefError, MIN_DIGITS, ShortId, short};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn short_of(s: &str) -> ShortId {
        match IdRef::parse(s) {
            Ok(IdRef::Short(s)) => s,
            other => panic!("{s:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn full_ids_short_ids_and_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(IdRef::parse(&id.to_string()), Ok(IdRef::Full(id)));
        assert_eq!(IdRef::parse(&id.simple().to_string()), Ok(IdRef::Full(id)));
        assert_eq!(short_of("0192F0C4").as_str(), "0192f0c4");
        assert_eq!(short_of("0192f0c4-5b1e").as_str(), "0192f0c45b1e");
        for bad in [
            "",
            "0192f0c",
            "0192f0cg",
            "-0192f0c4",
            "0192f0c4-",
            "../etc/passwd",
        ] {
            assert!(
                matches!(IdRef::parse(bad), Err(IdRefError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(IdRef::parse(&"a".repeat(32)).is_ok_and(|r| matches!(r, IdRef::Full(_))));
        assert!(IdRef::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn the_printed_short_id_is_the_random_tail() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        // Made in the same millisecond or nearly: the same first 8 digits, different tails.
        assert_eq!(a.simple().to_string()[..8], b.simple().to_string()[..8]);
        assert_ne!(short(a), short(b));
        assert_eq!(short(a).len(), MIN_DIGITS);
    }

    proptest! {
        #[test]
        fn every_prefix_and_suffix_of_an_id_matches_it(n in any::<u128>(), len in MIN_DIGITS..32usize) {
            let id = Uuid::from_u128(n);
            let hex = id.simple().to_string();
            let pre = short_of(&hex[..len]);
            let suf = short_of(&hex[32 - len..]);
            prop_assert!(pre.matches(id));
            prop_assert!(suf.matches(id));
            let (lo, hi) = pre.prefix_range();
            prop_assert!(lo <= id && id <= hi);
            prop_assert_eq!(suf.last8(), &hex[24..]);
        }

        #[test]
        fn the_prefix_range_holds_exactly_the_ids_with_the_prefix(n in any::<u128>(), p in any::<u128>(), len in MIN_DIGITS..32usize) {
            let id = Uuid::from_u128(n);
            let pre = short_of(&Uuid::from_u128(p).simple().to_string()[..len]);
            let (lo, hi) = pre.prefix_range();
            prop_assert_eq!(lo <= id && id <= hi, id.simple().to_string().starts_with(pre.as_str()));
        }
    }
}
