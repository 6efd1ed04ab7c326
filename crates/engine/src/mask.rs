//! Masking secret values in a job's output before it leaves the runner (SPEC §10).
//!
//! A [`Masker`] is built once per attempt from the values of the secrets the job was given:
//! every form of each value ([`forms::forms`]: the value, long lines of a multi-line value,
//! base64, percent-encodings, hex) is a pattern of one `aho-corasick` automaton with
//! leftmost-longest semantics, and every match becomes [`MASK`]. A [`MaskStream`] applies it
//! to output arriving in pieces: it holds back only the end of what it was given that could
//! still be the start of a pattern (a suffix that is a proper prefix of one), so a value split
//! across two reads is still masked, and the masked stream is byte for byte what masking the
//! whole output at once gives. Everything before the held-back part is final: no match can
//! start there and end past what was seen.
//!
//! The output buffer ([`crate::OutputBuffer::with_masker`]) runs it on every write, so the
//! log limit, the spool file and the uploader only ever see masked bytes, and log offsets are
//! those of the masked log.

pub mod forms;

use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::Arc;

/// What a masked occurrence becomes.
pub const MASK: &[u8] = b"[MASKED]";

/// The automaton could not be built (the values are too large together).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the secret masker: {0}")]
pub struct MaskError(String);

/// The patterns of one attempt's secrets. `Debug` shows how many, never which.
pub struct Masker {
    automaton: AhoCorasick,
    patterns: Vec<Vec<u8>>,
    /// Indexes into `patterns` by their first byte.
    by_first: Vec<Vec<usize>>,
    longest: usize,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} patterns)", self.patterns.len())
    }
}

impl Masker {
    /// A masker for these values; `None` when there is nothing to mask (no value, or only
    /// empty ones).
    pub fn new<V: AsRef<[u8]>>(
        values: impl IntoIterator<Item = V>,
    ) -> Result<Option<Arc<Self>>, MaskError> {
        let mut patterns: Vec<Vec<u8>> = values
            .into_iter()
            .flat_map(|v| forms::forms(v.as_ref()))
            .collect();
        patterns.sort_unstable();
        patterns.dedup();
        if patterns.is_empty() {
            return Ok(None);
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(|e| MaskError(e.to_string()))?;
        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in patterns.iter().enumerate() {
            by_first[usize::from(p[0])].push(i);
        }
        let longest = patterns.iter().map(Vec::len).max().unwrap_or(0);
        Ok(Some(Arc::new(Self {
            automaton,
            patterns,
            by_first,
            longest,
        })))
    }

    /// Masks a complete text at once (a reason or a note, not a stream).
    pub fn mask_all(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut at = 0;
        for m in self.automaton.find_iter(data) {
            out.extend_from_slice(&data[at..m.start()]);
            out.extend_from_slice(MASK);
            at = m.end();
        }
        out.extend_from_slice(&data[at..]);
        out
    }

    /// [`Masker::mask_all`] for text.
    pub fn mask_str(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.mask_all(text.as_bytes())).into_owned()
    }

    /// The first position at or after `from` where the rest of `buf` is a proper prefix of a
    /// pattern (it could still become one), or `buf.len()`.
    fn hold_from(&self, buf: &[u8], from: usize) -> usize {
        let start = from.max(buf.len().saturating_sub(self.longest.saturating_sub(1)));
        for s in start..buf.len() {
            let rest = &buf[s..];
            if self.by_first[usize::from(rest[0])].iter().any(|&i| {
                let p = &self.patterns[i];
                p.len() > rest.len() && p.starts_with(rest)
            }) {
                return s;
            }
        }
        buf.len()
    }

    /// Appends the masked part of `buf` that is final to `out`; returns how many bytes of
    /// `buf` that consumed (the rest must be seen again with what follows).
    fn mask_final(&self, buf: &[u8], out: &mut Vec<u8>) -> usize {
        let mut at = 0;
        // The earliest start that could still become a match, once needed: `None` until a
        // match comes within a pattern's length of the end.
        let mut hold: Option<usize> = None;
        let near_end = buf.len().saturating_sub(self.longest);
        for m in self.automaton.find_iter(buf) {
            if m.start() >= near_end {
                let h = match hold {
                    Some(h) if h >= at => h,
                    _ => self.hold_from(buf, at),
                };
                hold = Some(h);
                if m.start() >= h {
                    break;
                }
            }
            out.extend_from_slice(&buf[at..m.start()]);
            out.extend_from_slice(MASK);
            at = m.end();
        }
        let h = match hold {
            Some(h) if h >= at => h,
            _ => self.hold_from(buf, at),
        };
        out.extend_from_slice(&buf[at..h]);
        h
    }
}

/// Masks one stream of output given in pieces (see the module docs).
#[derive(Debug)]
pub struct MaskStream {
    masker: Arc<Masker>,
    held: Vec<u8>,
}

impl MaskStream {
    /// A stream masked by `masker`.
    pub fn new(masker: Arc<Masker>) -> Self {
        Self {
            masker,
            held: Vec::new(),
        }
    }

    /// Masks `data`, the next piece of the stream, appending what is final to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.held.is_empty() {
            let used = self.masker.mask_final(data, out);
            self.held.extend_from_slice(&data[used..]);
        } else {
            self.held.extend_from_slice(data);
            let used = self.masker.mask_final(&self.held, out);
            self.held.drain(..used);
        }
    }

    /// Ends the stream: what was held back is masked and appended to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let rest = std::mem::take(&mut self.held);
        out.extend_from_slice(&self.masker.mask_all(&rest));
    }

    /// Bytes held back now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests;
