//! The buffer between a job's output and the uploader.
//!
//! The engine appends as fast as the job writes; the uploader takes everything buffered in one
//! go (so small writes coalesce into large chunks). Bytes stay in memory while the uploader
//! keeps up (the fast path the bench's W2 measures). When it falls behind by more than the
//! memory cap — pipeline-svc is down or slow — the rest goes to an append-only spool file
//! ([`OutputBuffer::with_spool`], under `RUNNER_WORKDIR`) and the uploader reads it back in
//! order: the job never waits for the uploader, memory stays bounded, and no byte is dropped
//! or repeated. Without a spool file (or when the disk refuses it) the writer waits instead,
//! as before.
//!
//! With a limit ([`OutputBuffer::with_limit`], `RUNNER_LOG_LIMIT`, SPEC §15), bytes past the
//! first `limit` are counted and dropped at once (never blocking the job), and [`close`]
//! ends the log with one line of its own:
//! `[gitweave] log truncated at <N> bytes; <M> bytes dropped` (after a `\n` when the cut fell
//! mid-line; neither counts in N).
//!
//! With a masker ([`OutputBuffer::with_masker`], the job's secrets, SPEC §10) every write is
//! masked first ([`crate::mask`]): the limit counts masked bytes, and only masked bytes reach
//! memory, the spool file and the uploader. The masker's held-back tail (a possible start of a
//! value) is masked and appended at [`close`].
//!
//! Spool I/O is plain blocking file I/O under the buffer's lock: it happens only once memory
//! is full (then the job is far ahead of the network anyway), in appends and reads of at most
//! one chunk, on the runner's local disk.
//!
//! [`close`]: OutputBuffer::close

use crate::mask::{MaskStream, Masker};
use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Shared by one writer (the engine) and one reader (the uploader).
#[derive(Debug)]
pub struct OutputBuffer {
    state: Mutex<State>,
    readable: Notify,
    writable: Notify,
    cap: usize,
    limit: u64,
    spool_path: Option<PathBuf>,
    /// Masks the job's secrets in everything written (one writer: the stream stays in order).
    mask: Option<Mutex<MaskStream>>,
}

#[derive(Debug, Default)]
struct State {
    /// Bytes in memory; they come before the spool's unread bytes.
    buf: BytesMut,
    /// Bytes past memory, on disk, once memory filled up.
    spool: Option<Spool>,
    /// The spool could not be written: the writer waits for memory instead.
    spool_failed: bool,
    closed: bool,
    /// Bytes of the job's output kept (at most the limit).
    written: u64,
    /// Bytes of the job's output past the limit, dropped.
    dropped: u64,
    /// The last byte kept.
    last: Option<u8>,
}

#[derive(Debug)]
struct Spool {
    file: File,
    /// Where the reader is.
    read_at: u64,
    /// Bytes appended.
    len: u64,
}

impl Spool {
    fn unread(&self) -> u64 {
        self.len - self.read_at
    }
}

impl OutputBuffer {
    /// A buffer that holds at most `cap` bytes in memory before the writer waits (or, with a
    /// spool file, before it spills to disk), with no limit on the log.
    pub fn new(cap: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            writable: Notify::new(),
            cap,
            limit: u64::MAX,
            spool_path: None,
            mask: None,
        }
    }

    /// Masks every write with `masker` before anything else sees it (`None`: no secrets).
    pub fn with_masker(mut self, masker: Option<Arc<Masker>>) -> Self {
        self.mask = masker.map(|m| Mutex::new(MaskStream::new(m)));
        self
    }

    /// Keeps at most `limit` bytes of output; the rest is dropped and counted.
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Spills output past the memory cap to this file (created on first use, removed when the
    /// buffer is dropped), instead of making the writer wait.
    pub fn with_spool(mut self, path: PathBuf) -> Self {
        self.spool_path = Some(path);
        self
    }

    /// Appends bytes (those past the limit are dropped). Waits only while memory is over its
    /// cap and there is no spool file to spill to.
    pub async fn write(&self, data: &[u8]) {
        match &self.mask {
            Some(mask) => {
                let mut masked = Vec::with_capacity(data.len() + 64);
                mask.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(data, &mut masked);
                self.write_masked(&masked).await;
            }
            None => self.write_masked(data).await,
        }
    }

    /// [`OutputBuffer::write`] past the masker.
    async fn write_masked(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // What the limit keeps is decided once, on the first pass (one lock on the fast path).
        let mut kept: Option<&[u8]> = None;
        loop {
            let writable = self.writable.notified();
            {
                let mut st = self.lock();
                let data = match kept {
                    Some(d) => d,
                    None => {
                        let room = self.limit.saturating_sub(st.written);
                        let keep = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
                        st.dropped += (data.len() - keep) as u64;
                        *kept.insert(&data[..keep])
                    }
                };
                if data.is_empty() {
                    return;
                }
                if self.append(&mut st, data) {
                    st.written += data.len() as u64;
                    st.last = data.last().copied();
                    drop(st);
                    self.readable.notify_one();
                    return;
                }
            }
            writable.await;
        }
    }

    /// Appends a note of the runner's own (not the job's output) when it still fits under the
    /// limit; a log already cut gets no note, since it must end with the truncation line.
    pub async fn write_note(&self, note: &[u8]) {
        let fits = {
            let st = self.lock();
            st.dropped == 0 && st.written.saturating_add(note.len() as u64) <= self.limit
        };
        if fits {
            self.write(note).await;
        }
    }

    /// Puts `data` at the end of the stream: in memory while nothing is spooled and memory has
    /// room, else in the spool. `false`: no room anywhere now (wait for the reader).
    fn append(&self, st: &mut State, data: &[u8]) -> bool {
        let spooling = st.spool.as_ref().is_some_and(|s| s.unread() > 0);
        if !spooling && st.buf.len() < self.cap {
            st.buf.extend_from_slice(data);
            return true;
        }
        if st.spool_failed {
            return false;
        }
        let Some(path) = &self.spool_path else {
            return false;
        };
        if st.spool.is_none() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(path)
            {
                Ok(file) => {
                    st.spool = Some(Spool {
                        file,
                        read_at: 0,
                        len: 0,
                    });
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot create the log spool file; the job waits for the upload instead");
                    st.spool_failed = true;
                    return false;
                }
            }
        }
        let Some(spool) = st.spool.as_mut() else {
            return false;
        };
        match spool.file.write_all(data) {
            Ok(()) => {
                spool.len += data.len() as u64;
                true
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the log spool file; the job waits for the upload instead");
                // A partial append would leave garbage at the end: cut it back.
                let _ = spool.file.set_len(spool.len);
                st.spool_failed = true;
                false
            }
        }
    }

    /// Marks the end of output: the reader gets what is left, then `None`. A cut log gets its
    /// truncation line here.
    pub fn close(&self) {
        let mut tail = Vec::new();
        if let Some(mask) = &self.mask {
            mask.lock()
                .unwrap_or_else(|p| p.into_inner())
                .finish(&mut tail);
        }
        let mut st = self.lock();
        if !tail.is_empty() && !st.closed {
            let room = self.limit.saturating_sub(st.written);
            let keep = usize::try_from(room).unwrap_or(usize::MAX).min(tail.len());
            st.dropped += (tail.len() - keep) as u64;
            let kept = &tail[..keep];
            if !kept.is_empty() {
                // The writer is done: this must not wait either.
                if !self.append(&mut st, kept) {
                    st.buf.extend_from_slice(kept);
                }
                st.written += kept.len() as u64;
                st.last = kept.last().copied();
            }
        }
        if st.dropped > 0 && !st.closed {
            let mut line = String::new();
            if st.last.is_some_and(|b| b != b'\n') {
                line.push('\n');
            }
            line.push_str(&format!(
                "[gitweave] log truncated at {} bytes; {} bytes dropped\n",
                st.written, st.dropped
            ));
            // The writer is done: this must not wait, so past a failed spool it goes to memory.
            if !self.append(&mut st, line.as_bytes()) {
                st.buf.extend_from_slice(line.as_bytes());
            }
        }
        st.closed = true;
        drop(st);
        self.readable.notify_one();
    }

    /// Takes up to `max` buffered bytes, waiting until there are some; `None` once closed and
    /// drained.
    pub async fn take(&self, max: usize) -> Option<Bytes> {
        loop {
            let readable = self.readable.notified();
            {
                let mut st = self.lock();
                if let Some(out) = self.take_locked(&mut st, max) {
                    drop(st);
                    self.writable.notify_one();
                    return Some(out);
                }
                if st.closed {
                    return None;
                }
            }
            readable.await;
        }
    }

    /// Takes up to `max` buffered bytes without waiting (empty when none).
    pub fn take_now(&self, max: usize) -> Bytes {
        let mut st = self.lock();
        let out = self.take_locked(&mut st, max);
        drop(st);
        match out {
            Some(out) => {
                self.writable.notify_one();
                out
            }
            None => Bytes::new(),
        }
    }

    /// Memory first, then the spool, in order; `None` when nothing is buffered.
    fn take_locked(&self, st: &mut State, max: usize) -> Option<Bytes> {
        if max == 0 {
            return None;
        }
        if !st.buf.is_empty() {
            let n = st.buf.len().min(max);
            return Some(st.buf.split_to(n).freeze());
        }
        let spool = st.spool.as_mut()?;
        let n = usize::try_from(spool.unread())
            .unwrap_or(usize::MAX)
            .min(max);
        if n == 0 {
            return None;
        }
        let mut out = vec![0u8; n];
        match spool.file.read_exact_at(&mut out, spool.read_at) {
            Ok(()) => {
                spool.read_at += n as u64;
                if spool.unread() == 0 {
                    // All read back: start the file over, so it never grows past one outage.
                    let _ = spool.file.set_len(0);
                    spool.read_at = 0;
                    spool.len = 0;
                }
                Some(Bytes::from(out))
            }
            Err(e) => {
                // Bytes written to a local file that cannot be read back: nothing to recover.
                tracing::error!(error = %e, "cannot read the log spool file back");
                None
            }
        }
    }

    /// Bytes of the job's output kept so far (at most the limit).
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    /// Whether output was dropped at the limit.
    pub fn truncated(&self) -> bool {
        self.lock().dropped > 0
    }

    /// Bytes of output dropped at the limit.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the buffer inconsistent (every critical
        // section is a plain append or split), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for OutputBuffer {
    /// The attempt's log is stored (or given up): its spool goes.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if st.spool.take().is_some()
            && let Some(path) = &self.spool_path
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn coalesces_and_delivers_everything_in_order() {
        let b = Arc::new(OutputBuffer::new(16));
        let w = {
            let b = b.clone();
            tokio::spawn(async move {
                for i in 0..1000u32 {
                    b.write(format!("{i}\n").as_bytes()).await;
                }
                b.close();
            })
        };
        let mut got = Vec::new();
        while let Some(chunk) = b.take(7).await {
            assert!(chunk.len() <= 7);
            got.extend_from_slice(&chunk);
        }
        w.await.ok();
        let want: String = (0..1000u32).map(|i| format!("{i}\n")).collect();
        assert_eq!(String::from_utf8(got).ok(), Some(want));
        assert_eq!(
            b.written(),
            (0..1000u32)
                .map(|i| format!("{i}\n").len() as u64)
                .sum::<u64>()
        );
    }

    fn spool_path() -> PathBuf {
        std::env::temp_dir().join(format!(
            "gitweave-spool-test-{}-{}.log",
            std::process::id(),
            rand_suffix()
        ))
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::SeqCst)
    }

    async fn drain(b: &OutputBuffer, max: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(chunk) = b.take(max).await {
            got.extend_from_slice(&chunk);
        }
        got
    }

    #[tokio::test]
    async fn a_writer_past_the_memory_cap_spills_to_disk_without_waiting() {
        let path = spool_path();
        let b = OutputBuffer::new(8).with_spool(path.clone());
        // Nobody reads while the job writes: without the spool the second write would wait.
        for i in 0..200u32 {
            b.write(format!("line {i}\n").as_bytes()).await;
        }
        assert!(path.exists(), "the overflow is on disk");
        b.close();
        let got = drain(&b, 13).await;
        let want: String = (0..200u32).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(got).ok(), Some(want));
        drop(b);
        assert!(!path.exists(), "the spool goes with the buffer");
    }

    #[tokio::test]
    async fn the_log_ends_with_one_truncation_line_past_the_limit() {
        let b = OutputBuffer::new(1024).with_limit(10);
        b.write(b"0123456").await;
        b.write(b"789abcdef").await;
        b.write_note(b"gitweave: note\n").await;
        assert!(b.truncated());
        b.close();
        let got = drain(&b, 1024).await;
        assert_eq!(
            String::from_utf8(got).ok().as_deref(),
            Some("0123456789\n[gitweave] log truncated at 10 bytes; 6 bytes dropped\n")
        );
    }

    #[tokio::test]
    async fn a_cut_at_a_line_end_adds_no_newline_and_under_the_limit_nothing_is_added() {
        let b = OutputBuffer::new(1024).with_limit(4);
        b.write(b"abc\ndef").await;
        b.close();
        assert_eq!(
            drain(&b, 1024).await,
            b"abc\n[gitweave] log truncated at 4 bytes; 3 bytes dropped\n"
        );
        let b = OutputBuffer::new(1024).with_limit(4);
        b.write(b"abcd").await;
        b.write_note(b"x").await;
        b.close();
        assert!(!b.truncated());
        assert_eq!(drain(&b, 1024).await, b"abcd");
    }

    proptest! {
        /// Whatever the writes, the cap, the limit and the reader's chunk size: the reader gets
        /// exactly the first `limit` bytes in order, then the truncation line when anything was
        /// dropped.
        #[test]
        fn delivers_a_prefix_then_the_truncation_line(
            writes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..40),
            cap in 1usize..64,
            limit in 0u64..600,
            max in 1usize..50,
            spool in any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let path = spool_path();
            let got = rt.block_on(async {
                let mut b = OutputBuffer::new(cap).with_limit(limit);
                if spool {
                    b = b.with_spool(path.clone());
                }
                let b = Arc::new(b);
                let reader = {
                    let b = b.clone();
                    tokio::spawn(async move { drain(&b, max).await })
                };
                for w in &writes {
                    b.write(w).await;
                }
                b.close();
                reader.await.unwrap_or_default()
            });
            let all: Vec<u8> = writes.concat();
            let n = (limit as usize).min(all.len());
            let mut want = all[..n].to_vec();
            if all.len() > n {
                if want.last().is_some_and(|&c| c != b'\n') {
                    want.push(b'\n');
                }
                want.extend_from_slice(
                    format!("[gitweave] log truncated at {n} bytes; {} bytes dropped\n", all.len() - n).as_bytes(),
                );
            }
            prop_assert_eq!(got, want);
            prop_assert!(!path.exists());
        }
    }
}
