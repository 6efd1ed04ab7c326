//! Timestamps on the wire: RFC 3339, UTC, millisecond precision, `Z` suffix
//! (`2026-02-16T23:05:12.123Z`), as SPEC §6 shows for events; used for every timestamp so a
//! client parses one format.

use serde::{Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Formats a timestamp the way the API writes them.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&fmt)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// serde `with` module for `OffsetDateTime`.
pub mod required {
    use super::*;

    /// Serializes as `2026-02-16T23:05:12.123Z`.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    /// Accepts any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        OffsetDateTime::parse(&s, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

/// serde `with` module for `Option<OffsetDateTime>`.
pub mod optional {
    use super::*;

    /// Serializes `None` as `null`.
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(*t)),
            None => s.serialize_none(),
        }
    }

    /// Accepts `null` or any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| OffsetDateTime::parse(&s, &Rfc3339).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(
            format(datetime!(2026-02-16 23:05:12.123456 UTC)),
            "2026-02-16T23:05:12.123Z"
        );
        assert_eq!(
            format(datetime!(2026-02-17 01:05:12 +02:00)),
            "2026-02-16T23:05:12.000Z"
        );
    }
}
