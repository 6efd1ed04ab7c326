//! The gateway's path parser (`gitweave_api::route::parse`) on arbitrary input: it never
//! panics, and whatever it accepts has no dot segment, backslash or encoded `/`, `\` or `.`,
//! rebuilds to the very path parsed, and is left unchanged by the URL parser reqwest sends
//! with (the `url` crate).

#![no_main]

use gitweave_api::route::{self, Access};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = route::parse(path) else {
        return;
    };
    let rebuilt = parsed.upstream_path();
    assert_eq!(rebuilt, path, "an accepted path rebuilds to itself");
    assert!(!path.contains('\\'), "backslash accepted: {path:?}");
    let lower = path.to_ascii_lowercase();
    for escape in ["%2f", "%5c", "%2e"] {
        assert!(!lower.contains(escape), "{escape} accepted: {path:?}");
    }
    assert!(!parsed.segments().is_empty());
    for segment in parsed.segments() {
        assert!(!segment.is_empty(), "empty segment accepted: {path:?}");
        assert!(segment != "." && segment != "..", "dot segment accepted: {path:?}");
    }
    let url = url::Url::parse(&format!("http://127.0.0.1:8081{rebuilt}"))
        .unwrap_or_else(|e| panic!("an accepted path makes no URL ({e}): {path:?}"));
    assert_eq!(url.path(), path, "the URL parser rewrote an accepted path");
    // A webhook is only ever the exact four-segment POST form.
    if let Access::Webhook(provider) = parsed.access(&http::Method::POST) {
        let s = parsed.segments();
        assert!(s.len() == 4 && s[0] == "repos" && s[2] == "hooks");
        assert_eq!(s[3], provider.as_str());
    }
    for method in [http::Method::GET, http::Method::PUT, http::Method::DELETE] {
        assert_eq!(parsed.access(&method), Access::Api);
    }
});
