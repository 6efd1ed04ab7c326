//! The `Range` header of an artifact download (RFC 9110 §14.1.2): one `bytes=` range,
//! `a-b`, `a-` or `-n`, against a file of known size. Several ranges at once
//! (`multipart/byteranges`) are not served: the whole file is, as the RFC allows.

use std::ops::Range;

/// The longest `Range` header read; anything longer is ignored (the whole file is sent).
pub const MAX_RANGE_HEADER: usize = 256;

/// What to send for a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranged {
    /// The whole file (no header, a unit other than `bytes`, several ranges, or a header
    /// that is not a range: RFC 9110 says to ignore it).
    Whole,
    /// `206` with these bytes, `[start, end)`.
    Part(Range<u64>),
    /// `416`: a well-formed range that holds no byte of the file.
    Unsatisfiable,
}

/// Reads `header` (the `Range` value) for a file of `size` bytes.
pub fn parse(header: &str, size: u64) -> Ranged {
    if header.len() > MAX_RANGE_HEADER {
        return Ranged::Whole;
    }
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match num(last) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(size.saturating_sub(n)..size),
        },
        // `a-`: from a to the end.
        (false, true) => match num(first) {
            None => Ranged::Whole,
            Some(a) if a >= size => Ranged::Unsatisfiable,
            Some(a) => Ranged::Part(a..size),
        },
        (false, false) => match (num(first), num(last)) {
            (Some(a), Some(b)) if a <= b => match a >= size {
                true => Ranged::Unsatisfiable,
                false => Ranged::Part(a..b.saturating_add(1).min(size)),
            },
            // `b < a` is invalid: ignored.
            _ => Ranged::Whole,
        },
        (true, true) => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_three_forms() {
        assert_eq!(parse("bytes=0-99", 1000), Ranged::Part(0..100));
        assert_eq!(parse("bytes=900-", 1000), Ranged::Part(900..1000));
        assert_eq!(parse("bytes=-100", 1000), Ranged::Part(900..1000));
        assert_eq!(parse("bytes=-5000", 1000), Ranged::Part(0..1000));
        assert_eq!(parse("bytes=990-5000", 1000), Ranged::Part(990..1000));
        assert_eq!(parse("bytes=0-0", 1), Ranged::Part(0..1));
    }

    #[test]
    fn refuses_what_holds_no_byte_and_ignores_what_is_not_a_range() {
        assert_eq!(parse("bytes=1000-", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=1000-2000", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Ranged::Unsatisfiable);
        for ignored in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "items=0-1",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(parse(ignored, 1000), Ranged::Whole, "{ignored}");
        }
        assert_eq!(
            parse(&format!("bytes=0-{}", "9".repeat(300)), 10),
            Ranged::Whole
        );
    }

    proptest! {
        #[test]
        fn a_part_is_never_empty_and_never_past_the_end(h in "\\PC{0,40}", size in 0u64..10_000) {
            if let Ranged::Part(r) = parse(&h, size) {
                prop_assert!(r.start < r.end && r.end <= size);
            }
        }

        #[test]
        fn well_formed_ranges_are_read(a in 0u64..2000, len in 0u64..2000, size in 1u64..2000) {
            let got = parse(&format!("bytes={a}-{}", a + len), size);
            if a < size {
                prop_assert_eq!(got, Ranged::Part(a..(a + len + 1).min(size)));
            } else {
                prop_assert_eq!(got, Ranged::Unsatisfiable);
            }
        }
    }
}
