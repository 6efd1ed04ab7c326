//! [`ChunkWriter`]: what a blocking thread writes (a tar archive, a zstd stream) handed to the
//! async side in chunks through a bounded channel, so the writer waits for the reader and
//! memory stays at a few chunks whatever the size.

use crate::EngineError;
use bytes::{Bytes, BytesMut};
use std::io::{self, Write};
use tokio::sync::mpsc;

/// Writes into a channel of chunks of at most `chunk` bytes; the channel's reader gone is
/// `BrokenPipe`. Call from a blocking thread (it blocks on a full channel).
pub struct ChunkWriter {
    buf: BytesMut,
    chunk: usize,
    tx: mpsc::Sender<Result<Bytes, EngineError>>,
}

impl ChunkWriter {
    /// A writer of `chunk`-byte chunks into `tx`.
    pub fn new(tx: mpsc::Sender<Result<Bytes, EngineError>>, chunk: usize) -> Self {
        ChunkWriter {
            buf: BytesMut::with_capacity(chunk),
            chunk: chunk.max(1),
            tx,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.chunk - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= self.chunk {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_arrive_whole_in_order_and_a_gone_reader_is_a_broken_pipe() {
        let (tx, mut rx) = mpsc::channel(2);
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(tx, 4);
            w.write_all(b"abcdefghij").unwrap();
            w.flush().unwrap();
        });
        let mut got = Vec::new();
        while let Some(c) = rx.recv().await {
            let c = c.unwrap();
            assert!(c.len() <= 4);
            got.extend_from_slice(&c);
        }
        writer.await.unwrap();
        assert_eq!(got, b"abcdefghij");

        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let e = tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter::new(tx, 4);
            w.write_all(b"abcdefgh").and_then(|()| w.flush())
        })
        .await
        .unwrap()
        .expect_err("no reader");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
