//! Run and job ids from a request path (`gitweave_model::short_id::IdRef::parse`) on arbitrary
//! input: it never panics; a short id it accepts is 8 to 31 lowercase hex digits, its prefix
//! range holds exactly the ids that start with it, and an id padded from it, or ending with
//! it, matches it.

#![no_main]

use gitweave_model::short_id::{IdRef, MIN_DIGITS};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(IdRef::Short(s)) = IdRef::parse(raw) else {
        return;
    };
    let hex = s.as_str();
    assert!((MIN_DIGITS..32).contains(&hex.len()), "{raw:?} -> {hex:?}");
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let (lo, hi) = s.prefix_range();
    assert!(lo <= hi);
    assert!(lo.simple().to_string().starts_with(hex));
    assert!(hi.simple().to_string().starts_with(hex));
    assert!(s.matches(lo) && s.matches(hi));
    let tail = format!("{}{hex}", "0".repeat(32 - hex.len()));
    let ends = Uuid::parse_str(&tail).expect("32 hex digits");
    assert!(s.matches(ends));
    assert_eq!(s.last8(), &hex[hex.len() - MIN_DIGITS..]);
});
