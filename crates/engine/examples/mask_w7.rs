//! W7, in-process (bench/FINDINGS.md): W2's 22.9 MB log written through the runner's output
//! buffer in 32 KiB pieces and drained by a concurrent reader, without a masker and with one
//! for 10 secrets none of which is printed, alternating, 7 times each. Prints the medians and
//! the ratio. Run: `cargo run --release -p gitweave-engine --example mask_w7`.
//!
//! The end-to-end W7 (a job given 10 secrets by pipeline-svc) needs the server side of issue
//! 13; this measures the part masking adds to, the runner's output path.

use gitweave_engine::{MaskStream, Masker, OutputBuffer};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PIECE: usize = 32 * 1024;

fn w2_log() -> Vec<u8> {
    let mut v = Vec::with_capacity(23_000_000);
    v.extend_from_slice(b"$ seq 1 3000000\n");
    for i in 1..=3_000_000u32 {
        v.extend_from_slice(i.to_string().as_bytes());
        v.push(b'\n');
    }
    v
}

fn secrets() -> Vec<String> {
    (0..10)
        .map(|i| {
            format!(
                "ghp_{:016x}{:016x}",
                0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i + 1),
                i * 7919
            )
        })
        .collect()
}

async fn through_buffer(log: &[u8], masker: Option<Arc<Masker>>) -> (Duration, u64) {
    let buffer = Arc::new(OutputBuffer::new(16 * 1024 * 1024).with_masker(masker));
    let reader = {
        let b = buffer.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(chunk) = b.take(1024 * 1024).await {
                n += chunk.len() as u64;
            }
            n
        })
    };
    let t = Instant::now();
    for piece in log.chunks(PIECE) {
        buffer.write(piece).await;
    }
    buffer.close();
    let n = reader.await.unwrap_or(0);
    (t.elapsed(), n)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = w2_log();
    let masker = Masker::new(secrets())?.ok_or("no masker")?;
    let (mut plain, mut masked) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let (d, n) = through_buffer(&log, None).await;
        assert_eq!(n, log.len() as u64);
        plain.push(d);
        let (d, n) = through_buffer(&log, Some(masker.clone())).await;
        assert_eq!(n, log.len() as u64, "nothing printed is masked");
        masked.push(d);
    }
    let t = Instant::now();
    let mut s = MaskStream::new(masker.clone());
    let mut out = Vec::with_capacity(log.len());
    for piece in log.chunks(PIECE) {
        s.push(piece, &mut out);
    }
    s.finish(&mut out);
    let raw = t.elapsed();
    let (p, m) = (median(plain), median(masked));
    let mb = log.len() as f64 / 1e6;
    println!("log: {mb:.1} MB in {PIECE}-byte writes, 10 secrets: {masker:?}");
    println!(
        "buffer without masker: median {:.1} ms",
        p.as_secs_f64() * 1e3
    );
    println!(
        "buffer with masker:    median {:.1} ms",
        m.as_secs_f64() * 1e3
    );
    println!("ratio: {:.2}x", m.as_secs_f64() / p.as_secs_f64());
    println!(
        "masker alone: {:.1} ms ({:.0} MB/s)",
        raw.as_secs_f64() * 1e3,
        mb / raw.as_secs_f64()
    );
    Ok(())
}
