//! Line numbers over a log read as a stream of byte chunks (the raw log API), so the log page
//! can open at any line without the browser ever holding the whole log.
//!
//! Line 1 starts at byte 0; every `\n` ends a line, and the next line starts after it unless
//! the log ends there (a final newline makes no empty last line). [`Locator`] finds where a
//! line starts — by number, the n-th from the end, or the page before a byte offset — and
//! [`Searcher`] finds the lines whose visible text (escape sequences dropped) contains a word.

use std::collections::VecDeque;

/// Where a line starts: its first byte's offset and its 1-based number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinePos {
    /// Byte offset of its first byte.
    pub offset: u64,
    /// 1-based line number.
    pub line: u64,
}

impl LinePos {
    /// The first line.
    pub const START: LinePos = LinePos { offset: 0, line: 1 };
}

/// What a [`Locator`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Line `n` (1-based); the last line when the log has fewer.
    Line(u64),
    /// The `n`-th line from the end (1: the last line); the first line when there are fewer.
    Tail(usize),
    /// The last line that starts at or before `offset - bytes` (a page before `offset`).
    Before {
        /// Where the page that is already shown starts.
        offset: u64,
        /// How far back to go.
        bytes: u64,
    },
}

/// Finds a [`Target`] in a log fed to it chunk by chunk, in order.
#[derive(Debug, Clone)]
pub struct Locator {
    target: Target,
    /// Bytes seen.
    seen: u64,
    /// Starts of the latest lines (all that [`Target::Tail`] needs; one otherwise).
    starts: VecDeque<LinePos>,
    /// The number of the latest line started.
    line: u64,
    /// A newline ended the bytes so far: the line after it starts if more bytes come.
    pending: Option<LinePos>,
    done: Option<LinePos>,
}

impl Locator {
    /// A locator for `target` at the start of a log.
    pub fn new(target: Target) -> Self {
        let mut l = Self {
            target,
            seen: 0,
            starts: VecDeque::from([LinePos::START]),
            line: 1,
            pending: None,
            done: None,
        };
        if let Target::Line(n) = target
            && n <= 1
        {
            l.done = Some(LinePos::START);
        }
        l
    }

    fn keep(&self) -> usize {
        match self.target {
            Target::Tail(n) => n.max(1),
            _ => 1,
        }
    }

    /// Feeds the next bytes; true once the answer is known (more input changes nothing).
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.done.is_some() {
            return true;
        }
        if chunk.is_empty() {
            return false;
        }
        let base = self.seen;
        self.seen = base + chunk.len() as u64;
        // A newline that ended the last chunk starts a line now that more bytes follow.
        if let Some(p) = self.pending.take()
            && self.commit(p)
        {
            return true;
        }
        for (i, _) in chunk.iter().enumerate().filter(|(_, b)| **b == b'\n') {
            let start = LinePos {
                offset: base + i as u64 + 1,
                line: self.line + 1,
            };
            if i + 1 == chunk.len() {
                self.pending = Some(start);
            } else if self.commit(start) {
                return true;
            }
        }
        false
    }

    /// Records a line start; true when it settles the answer.
    fn commit(&mut self, start: LinePos) -> bool {
        if let Target::Before { offset, bytes } = self.target
            && start.offset > offset.saturating_sub(bytes)
        {
            // A line start past the target: the latest start kept is the answer.
            self.done = self.starts.back().copied();
            return true;
        }
        self.line = start.line;
        self.starts.push_back(start);
        if self.starts.len() > self.keep() {
            self.starts.pop_front();
        }
        if let Target::Line(n) = self.target
            && self.line == n
        {
            self.done = Some(start);
            return true;
        }
        false
    }

    /// The answer, once the whole log (or enough of it) was fed.
    pub fn finish(self) -> LinePos {
        if let Some(found) = self.done {
            return found;
        }
        // A newline at the very end starts no line: `pending` is dropped.
        let pick = match self.target {
            Target::Tail(_) => self.starts.front(),
            _ => self.starts.back(),
        };
        pick.copied().unwrap_or(LinePos::START)
    }
}

/// A line whose visible text contains the searched word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Where the line starts.
    pub at: LinePos,
    /// Its visible text, cut to [`PREVIEW_CHARS`].
    pub preview: String,
}

/// Characters of a hit's line shown in the results.
pub const PREVIEW_CHARS: usize = 200;
/// Bytes of one line searched; the rest of a longer line is not.
pub const LINE_CAP: usize = 64 * 1024;

/// Finds lines containing a word (ASCII case-insensitive), at most `max` of them.
#[derive(Debug, Clone)]
pub struct Searcher {
    needle: String,
    max: usize,
    seen: u64,
    current: LinePos,
    buf: Vec<u8>,
    hits: Vec<Hit>,
}

impl Searcher {
    /// A search for `needle` (not empty) that stops after `max` hits.
    pub fn new(needle: &str, max: usize) -> Self {
        Self {
            needle: needle.to_ascii_lowercase(),
            max,
            seen: 0,
            current: LinePos::START,
            buf: Vec::new(),
            hits: Vec::new(),
        }
    }

    fn line_done(&mut self) {
        let text = crate::ansi::plain(&String::from_utf8_lossy(&self.buf));
        if !self.needle.is_empty() && text.to_ascii_lowercase().contains(&self.needle) {
            self.hits.push(Hit {
                at: self.current,
                preview: text.chars().take(PREVIEW_CHARS).collect(),
            });
        }
        self.buf.clear();
    }

    /// Feeds the next bytes; true once `max` hits are found.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut rest = chunk;
        while !rest.is_empty() && self.hits.len() < self.max {
            let (part, newline) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            let room = LINE_CAP.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&part[..part.len().min(room)]);
            self.seen += part.len() as u64;
            rest = &rest[part.len()..];
            if newline {
                self.line_done();
                self.seen += 1;
                rest = &rest[1..];
                self.current = LinePos {
                    offset: self.seen,
                    line: self.current.line + 1,
                };
            }
        }
        self.hits.len() >= self.max
    }

    /// The hits, in log order (the last line searched too when the log ends without `\n`).
    pub fn finish(mut self) -> Vec<Hit> {
        if !self.buf.is_empty() && self.hits.len() < self.max {
            self.line_done();
        }
        self.hits
    }
}

#[cfg(test)]
mod tests {
    use super::{LinePos, Locator, Searcher, Target};
    use proptest::prelude::*;

    /// Starts of every line, the obvious way.
    fn starts(log: &[u8]) -> Vec<LinePos> {
        let mut out = vec![LinePos::START];
        for (i, b) in log.iter().enumerate() {
            if *b == b'\n' && i + 1 < log.len() {
                out.push(LinePos {
                    offset: i as u64 + 1,
                    line: out.len() as u64 + 1,
                });
            }
        }
        out
    }

    fn naive(log: &[u8], target: Target) -> LinePos {
        let s = starts(log);
        match target {
            Target::Line(n) => s[(n.max(1) as usize).min(s.len()) - 1],
            Target::Tail(n) => s[s.len().saturating_sub(n.max(1))],
            Target::Before { offset, bytes } => {
                let t = offset.saturating_sub(bytes);
                *s.iter()
                    .rev()
                    .find(|p| p.offset <= t)
                    .unwrap_or(&LinePos::START)
            }
        }
    }

    fn locate(log: &[u8], cuts: &[usize], target: Target) -> LinePos {
        let mut l = Locator::new(target);
        let mut at = 0;
        for &c in cuts {
            let c = c.min(log.len()).max(at);
            if l.feed(&log[at..c]) {
                return l.finish();
            }
            at = c;
        }
        l.feed(&log[at..]);
        l.finish()
    }

    #[test]
    fn lines_by_number_from_the_end_and_before_an_offset() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(
            locate(log, &[], Target::Line(3)),
            LinePos { offset: 8, line: 3 }
        );
        assert_eq!(
            locate(log, &[], Target::Line(9)),
            LinePos { offset: 8, line: 3 }
        );
        assert_eq!(
            locate(log, &[], Target::Tail(1)),
            LinePos { offset: 8, line: 3 }
        );
        assert_eq!(
            locate(log, &[], Target::Tail(2)),
            LinePos { offset: 4, line: 2 }
        );
        assert_eq!(locate(log, &[], Target::Tail(7)), LinePos::START);
        let before = Target::Before {
            offset: 8,
            bytes: 4,
        };
        assert_eq!(locate(log, &[2, 5], before), LinePos { offset: 4, line: 2 });
        assert_eq!(locate(b"", &[], Target::Tail(3)), LinePos::START);
    }

    #[test]
    fn search_finds_visible_text_across_chunks_case_insensitively() {
        let mut s = Searcher::new("Error", 10);
        for part in [
            &b"ok\nan er"[..],
            b"ror here\n\x1b[31mERR",
            b"OR\x1b[0m\nfine",
        ] {
            s.feed(part);
        }
        let hits = s.finish();
        let at: Vec<u64> = hits.iter().map(|h| h.at.line).collect();
        assert_eq!(at, vec![2, 3]);
        assert_eq!(hits[1].preview, "ERROR");
        assert_eq!(hits[1].at.offset, 17);
        let mut capped = Searcher::new("x", 1);
        assert!(capped.feed(b"x\nx\n"));
        assert_eq!(capped.finish().len(), 1);
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            (0_u64..40).prop_map(Target::Line),
            (1_usize..40).prop_map(Target::Tail),
            (0_u64..300, 0_u64..300).prop_map(|(offset, bytes)| Target::Before { offset, bytes }),
        ]
    }

    proptest! {
        #[test]
        fn the_locator_agrees_with_counting_the_whole_log(
            log in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0_usize..300, 0..6),
            target in target(),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(locate(&log, &cuts, target), naive(&log, target));
        }

        #[test]
        fn search_hits_are_line_starts_of_the_log(
            lines in proptest::collection::vec("[a-c]{0,6}", 0..30),
            cut in 0_usize..200,
        ) {
            let log = lines.join("\n");
            let bytes = log.as_bytes();
            let mut s = Searcher::new("ab", 1000);
            let cut = cut.min(bytes.len());
            s.feed(&bytes[..cut]);
            s.feed(&bytes[cut..]);
            let hits = s.finish();
            let want: Vec<u64> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.contains("ab"))
                .map(|(i, _)| i as u64 + 1)
                .collect();
            let got: Vec<u64> = hits.iter().map(|h| h.at.line).collect();
            prop_assert_eq!(got, want);
            let all = starts(bytes);
            for h in &hits {
                prop_assert!(all.contains(&h.at));
            }
        }
    }
}
