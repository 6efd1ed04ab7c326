//! The artifact download's `Range` header (`gitweave_model::byte_range::parse`) on arbitrary
//! input and sizes: it never panics, and a part it answers is non-empty and inside the file.

#![no_main]

use gitweave_model::byte_range::{Ranged, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (size, header) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => return,
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Ranged::Part(r) = parse(header, size) {
        assert!(r.start < r.end && r.end <= size, "{header:?} of {size} -> {r:?}");
    }
});
