//! A log line of arbitrary bytes (as the log API gives it: UTF-8, invalid bytes replaced) →
//! the web UI's ANSI renderer: it never panics, its HTML is only escaped text and our own
//! balanced `<span class="…">` tags, the style it leaves is one it can carry, and the line
//! locator and searcher agree on line starts over the same bytes cut at an arbitrary point.

#![no_main]

use gitweave_ui_render::ansi::{self, Style};
use gitweave_ui_render::lines::{LinePos, Locator, Searcher, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut style = Style::default();
    for line in text.split('\n') {
        let html = ansi::render(line, &mut style);
        assert!(ansi::is_safe_markup(&html), "{line:?} → {html:?}");
        assert!(style.fg.is_none_or(|c| c < 16));
        // What the reader sees contains no control character but tabs.
        assert!(
            ansi::plain(line)
                .chars()
                .all(|c| c == '\t' || !c.is_control())
        );
    }
    // Line arithmetic over the raw bytes, fed in two pieces.
    let cut = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut tail = Locator::new(Target::Tail(1));
    tail.feed(&data[..cut]);
    tail.feed(&data[cut..]);
    let last = tail.finish();
    let lines = 1 + data
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'\n' && i + 1 < data.len())
        .count() as u64;
    assert_eq!(last.line, lines);
    let mut by_number = Locator::new(Target::Line(lines));
    by_number.feed(data);
    assert_eq!(by_number.finish(), last);
    let mut s = Searcher::new("a", usize::MAX);
    s.feed(&data[..cut]);
    s.feed(&data[cut..]);
    for hit in s.finish() {
        assert!(hit.at.line >= 1 && hit.at.line <= lines);
        assert!(hit.at == LinePos::START || data[hit.at.offset as usize - 1] == b'\n');
    }
});
