//! A request body on its way to pipeline-svc: counted against its limit as it streams, and
//! cut when the client stops sending it (a slow-body attack holds a connection and an upstream
//! request open for as long as it trickles).
//!
//! Either cut ends the upload with an error, so reqwest's `send` fails; the proxy then asks
//! [`Guard::cut`] why and answers 413 or 408 instead of a 502.

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Why a body was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// More bytes than the limit.
    TooLarge,
    /// Nothing arrived for the idle timeout.
    Idle,
}

/// Tells, after the upload failed, whether (and why) the gateway cut it.
#[derive(Debug, Clone, Default)]
pub struct Guard(Arc<OnceLock<Cut>>);

impl Guard {
    /// The reason the body was cut, if it was.
    pub fn cut(&self) -> Option<Cut> {
        self.0.get().copied()
    }
}

/// Limits on one request body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: u64,
    /// Longest wait for the next piece of the body.
    pub idle: Duration,
}

/// `body` as a stream that fails once it passes `limits.max_bytes`, or once the client has
/// sent nothing for `limits.idle` while the upload waits for more.
pub fn guard(
    body: Body,
    limits: BodyLimits,
) -> (
    impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    Guard,
) {
    let guard = Guard::default();
    let flag = guard.0.clone();
    let state = (body.into_data_stream(), 0_u64, false);
    let stream = futures::stream::unfold(state, move |(mut data, seen, done)| {
        let flag = flag.clone();
        async move {
            if done {
                return None;
            }
            let fail = |cut: Cut, message: &'static str| {
                let _ = flag.set(cut);
                Err(std::io::Error::other(message))
            };
            match tokio::time::timeout(limits.idle, data.next()).await {
                Err(_) => Some((
                    fail(Cut::Idle, "the client stopped sending the request body"),
                    (data, seen, true),
                )),
                Ok(None) => None,
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), (data, seen, true))),
                Ok(Some(Ok(chunk))) => {
                    let seen = seen + chunk.len() as u64;
                    if seen > limits.max_bytes {
                        Some((
                            fail(Cut::TooLarge, "request body over the limit"),
                            (data, seen, true),
                        ))
                    } else {
                        Some((Ok(chunk), (data, seen, false)))
                    }
                }
            }
        }
    });
    (stream, guard)
}

#[cfg(test)]
mod tests {
    use super::{BodyLimits, Cut, guard};
    use axum::body::Body;
    use futures::StreamExt;
    use std::time::Duration;

    fn limits(max_bytes: u64) -> BodyLimits {
        BodyLimits {
            max_bytes,
            idle: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn a_body_within_the_limit_streams_through_unchanged() {
        let (stream, g) = guard(Body::from("hello world"), limits(11));
        let chunks: Vec<_> = stream.collect().await;
        let bytes: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.expect("chunk").to_vec())
            .collect();
        assert_eq!(bytes, b"hello world");
        assert_eq!(g.cut(), None);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_ends_in_an_error_and_says_why() {
        let parts = futures::stream::iter(
            ["abc", "def", "ghi"].map(|s| Ok::<_, std::io::Error>(bytes::Bytes::from(s))),
        );
        let (stream, g) = guard(Body::from_stream(parts), limits(7));
        let results: Vec<_> = stream.collect().await;
        assert_eq!(results.len(), 3, "two chunks, then the error, then the end");
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(results[2].is_err());
        assert_eq!(g.cut(), Some(Cut::TooLarge));
    }

    #[tokio::test]
    async fn a_client_error_is_passed_on_and_is_not_a_cut() {
        let parts = futures::stream::iter([Err::<bytes::Bytes, _>(std::io::Error::other("reset"))]);
        let (stream, g) = guard(Body::from_stream(parts), limits(7));
        let results: Vec<_> = stream.collect().await;
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
        assert_eq!(g.cut(), None);
    }
}
