//! Byte-offset arithmetic for job logs.
//!
//! A job's output is stored as chunks `(offset, bytes)` whose offsets are contiguous from 0.
//! A page asks for at most `limit` bytes from `offset`; it may start or end inside a stored
//! chunk. Pages are cut so they do not split a UTF-8 character when that is possible, so that
//! concatenating the `data` of successive pages of valid UTF-8 output gives the output back.

/// Default page size of `GET /jobs/{id}/logs` (64 KiB).
pub const DEFAULT_PAGE_BYTES: i64 = 64 * 1024;
/// Largest page (1 MiB).
pub const MAX_PAGE_BYTES: i64 = 1024 * 1024;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// First byte wanted.
    pub offset: i64,
    /// At most this many bytes (1..=[`MAX_PAGE_BYTES`]).
    pub limit: i64,
}

/// Why a page request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// Negative offset.
    #[error("offset must be 0 or more, got {0}")]
    NegativeOffset(i64),
    /// Zero or negative limit.
    #[error("limit must be at least 1, got {0}")]
    BadLimit(i64),
    /// The window's end does not fit in a 64-bit offset.
    #[error(
        "offset + limit must be at most {max} (the largest byte offset), got offset {offset} and limit {limit}",
        max = i64::MAX
    )]
    PastTheEnd {
        /// Offset asked for.
        offset: i64,
        /// Limit used (after clamping).
        limit: i64,
    },
}

impl PageRequest {
    /// Checks the query values; a limit above the maximum is clamped to it (the page says
    /// where to continue, so a client loses nothing).
    pub fn new(offset: Option<i64>, limit: Option<i64>) -> Result<Self, PageError> {
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(PageError::NegativeOffset(offset));
        }
        let limit = limit.unwrap_or(DEFAULT_PAGE_BYTES);
        if limit < 1 {
            return Err(PageError::BadLimit(limit));
        }
        let limit = limit.min(MAX_PAGE_BYTES);
        // The window's end is computed here, in SQL and for `next_offset`: it must not overflow.
        if offset.checked_add(limit).is_none() {
            return Err(PageError::PastTheEnd { offset, limit });
        }
        Ok(Self { offset, limit })
    }
}

/// Copies the bytes `[from, from + limit)` out of stored chunks (sorted by offset, contiguous).
/// Chunks outside the window are ignored; a window past the end gives fewer bytes or none.
pub fn window<'a>(
    chunks: impl IntoIterator<Item = (i64, &'a [u8])>,
    from: i64,
    limit: i64,
) -> Vec<u8> {
    let end = from.saturating_add(limit);
    let mut out = Vec::new();
    for (offset, bytes) in chunks {
        let chunk_end = offset + bytes.len() as i64;
        if chunk_end <= from || offset >= end {
            continue;
        }
        let lo = (from.max(offset) - offset) as usize;
        let hi = (end.min(chunk_end) - offset) as usize;
        out.extend_from_slice(&bytes[lo..hi]);
    }
    out
}

/// How many leading bytes of `bytes` to return so the page does not end inside a UTF-8
/// character: drops an incomplete (but so far valid) trailing sequence, unless that would
/// leave nothing (a page must make progress).
pub fn utf8_safe_len(bytes: &[u8]) -> usize {
    let n = bytes.len();
    // A UTF-8 sequence is at most 4 bytes: look back at most 3 for its lead byte.
    for back in 1..=3.min(n) {
        let b = bytes[n - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: keep looking for the lead
        }
        let needed = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return n, // ASCII or invalid lead: nothing to hold back
        };
        if needed > back && std::str::from_utf8(&bytes[n - back..]).is_err() && n > back {
            return n - back;
        }
        return n;
    }
    n
}

/// Merged, validated bytes of one page: where it starts and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Offset of the first byte.
    pub offset: i64,
    /// The bytes (cut at a character boundary where possible).
    pub bytes: Vec<u8>,
}

impl Page {
    /// Where the next page starts.
    pub fn next_offset(&self) -> i64 {
        self.offset + self.bytes.len() as i64
    }
}

/// Builds a page from stored chunks: the window, then the UTF-8-safe cut — only when the page
/// was limited (at the end of the log the bytes are what they are).
pub fn page<'a>(chunks: impl IntoIterator<Item = (i64, &'a [u8])>, req: PageRequest) -> Page {
    let mut bytes = window(chunks, req.offset, req.limit);
    if bytes.len() as i64 == req.limit {
        bytes.truncate(utf8_safe_len(&bytes));
    }
    Page {
        offset: req.offset,
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(data: &[u8], cuts: &[usize]) -> Vec<(i64, Vec<u8>)> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.push(0);
        points.push(data.len());
        points.sort_unstable();
        points.dedup();
        points
            .windows(2)
            .map(|w| (w[0] as i64, data[w[0]..w[1]].to_vec()))
            .collect()
    }

    fn reassemble(chunks: &[(i64, Vec<u8>)], limit: i64) -> (Vec<u8>, String, usize) {
        let mut bytes = Vec::new();
        let mut text = String::new();
        let mut pages = 0;
        let mut offset = 0;
        loop {
            let p = page(
                chunks.iter().map(|(o, b)| (*o, b.as_slice())),
                PageRequest { offset, limit },
            );
            if p.bytes.is_empty() {
                return (bytes, text, pages);
            }
            pages += 1;
            text.push_str(&String::from_utf8_lossy(&p.bytes));
            bytes.extend_from_slice(&p.bytes);
            offset = p.next_offset();
        }
    }

    #[test]
    fn request_defaults_clamps_and_refuses() {
        assert_eq!(
            PageRequest::new(None, None),
            Ok(PageRequest {
                offset: 0,
                limit: DEFAULT_PAGE_BYTES
            })
        );
        assert_eq!(
            PageRequest::new(Some(5), Some(1 << 30)).map(|r| r.limit),
            Ok(MAX_PAGE_BYTES)
        );
        assert_eq!(
            PageRequest::new(Some(-1), None),
            Err(PageError::NegativeOffset(-1))
        );
        assert_eq!(PageRequest::new(None, Some(0)), Err(PageError::BadLimit(0)));
    }

    #[test]
    fn a_window_past_the_last_offset_is_refused() {
        assert_eq!(
            PageRequest::new(Some(i64::MAX), None),
            Err(PageError::PastTheEnd {
                offset: i64::MAX,
                limit: DEFAULT_PAGE_BYTES
            })
        );
        assert!(PageRequest::new(Some(i64::MAX), Some(1)).is_err());
        assert!(PageRequest::new(Some(i64::MAX - 1), Some(2)).is_err());
        assert_eq!(
            PageRequest::new(Some(i64::MAX - 1), Some(1)).map(|r| r.offset + r.limit),
            Ok(i64::MAX)
        );
        let msg = PageRequest::new(Some(i64::MAX), None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("9223372036854775807"), "{msg}");
    }

    proptest! {
        #[test]
        fn an_accepted_window_never_overflows(offset in any::<i64>(), limit in any::<i64>()) {
            if let Ok(r) = PageRequest::new(Some(offset), Some(limit)) {
                prop_assert!(r.offset.checked_add(r.limit).is_some());
            }
        }
    }

    #[test]
    fn window_cuts_inside_chunks() {
        let chunks = [(0i64, &b"hello "[..]), (6, &b"world"[..])];
        assert_eq!(window(chunks, 3, 5), b"lo wo");
        assert_eq!(window(chunks, 10, 5), b"d");
        assert_eq!(window(chunks, 11, 5), b"");
    }

    #[test]
    fn page_does_not_split_a_character() {
        let text = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
        let chunks = [(0i64, text)];
        let p = page(
            chunks,
            PageRequest {
                offset: 0,
                limit: 2,
            },
        );
        assert_eq!(p.bytes, b"a");
        let p = page(
            chunks,
            PageRequest {
                offset: 3,
                limit: 5,
            },
        );
        assert_eq!(p.bytes, "€".as_bytes());
        // Progress even when the limit is smaller than one character.
        let p = page(
            chunks,
            PageRequest {
                offset: 6,
                limit: 2,
            },
        );
        assert_eq!(p.bytes.len(), 2);
    }

    proptest! {
        #[test]
        fn paging_reassembles_any_bytes_exactly(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            limit in 1i64..300,
        ) {
            let chunks = split(&data, &cuts);
            let (bytes, _, _) = reassemble(&chunks, limit);
            prop_assert_eq!(bytes, data);
        }

        #[test]
        fn paging_valid_utf8_gives_the_text_back(
            text in "\\PC{0,400}",
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
            limit in 4i64..100,
        ) {
            let chunks = split(text.as_bytes(), &cuts);
            let (_, joined, _) = reassemble(&chunks, limit);
            prop_assert_eq!(joined, text);
        }
    }
}
