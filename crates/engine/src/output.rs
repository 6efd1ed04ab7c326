//! The buffer between a job's output and the uploader.
//!
//! The engine appends as fast as the job writes; the uploader takes everything buffered in one
//! go (so small writes coalesce into large chunks). Only when the uploader falls behind by more
//! than the cap does the writer wait — bounded memory, and no byte is ever dropped.

use bytes::{Bytes, BytesMut};
use std::sync::Mutex;
use tokio::sync::Notify;

/// Shared by one writer (the engine) and one reader (the uploader).
#[derive(Debug)]
pub struct OutputBuffer {
    state: Mutex<State>,
    readable: Notify,
    writable: Notify,
    cap: usize,
}

#[derive(Debug, Default)]
struct State {
    buf: BytesMut,
    closed: bool,
    /// Total bytes ever written.
    written: u64,
}

impl OutputBuffer {
    /// A buffer that holds at most `cap` bytes before the writer waits.
    pub fn new(cap: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            writable: Notify::new(),
            cap,
        }
    }

    /// Appends bytes, waiting while the buffer is over its cap.
    pub async fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        loop {
            let writable = self.writable.notified();
            {
                let mut st = self.lock();
                if st.buf.len() < self.cap {
                    st.buf.extend_from_slice(data);
                    st.written += data.len() as u64;
                    drop(st);
                    self.readable.notify_one();
                    return;
                }
            }
            writable.await;
        }
    }

    /// Marks the end of output: the reader gets what is left, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_one();
    }

    /// Takes up to `max` buffered bytes, waiting until there are some; `None` once closed and
    /// drained.
    pub async fn take(&self, max: usize) -> Option<Bytes> {
        loop {
            let readable = self.readable.notified();
            {
                let mut st = self.lock();
                if !st.buf.is_empty() {
                    let n = st.buf.len().min(max);
                    let out = st.buf.split_to(n).freeze();
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
        let n = st.buf.len().min(max);
        let out = st.buf.split_to(n).freeze();
        drop(st);
        if n > 0 {
            self.writable.notify_one();
        }
        out
    }

    /// Total bytes written so far.
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the buffer inconsistent (every critical
        // section is a plain append or split), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
