//! The web UI's pure logic, kept apart from the gateway's I/O so it can be unit-, property-
//! and fuzz-tested (`fuzz/fuzz_targets/ansi.rs`):
//!
//! - [`ansi`]: one log line with ANSI escape sequences → escaped HTML with colour spans;
//! - [`dag`]: a run's jobs → columns and rows of the run page's graph, with its edges;
//! - [`lines`]: byte offsets and line numbers over a log read as a stream of chunks.

pub mod ansi;
pub mod dag;
pub mod lines;

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by entities, for HTML text and attributes.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}
