//! One way to follow something that grows (a job's log, a run's events): subscribe to its
//! changes before the first read, read what is new, and when nothing is, wait for a change
//! (or a recheck tick) and read again, until the source says it has ended.
//!
//! `routes/jobs.rs` (`/logs/raw?follow=true`) and `routes/events.rs` (NDJSON and SSE) are
//! [`Source`]s; this module owns the loop, the wait and the SSE keep-alive.

use bytes::Bytes;
use futures::Stream;
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use uuid::Uuid;

/// How often a follower reads again without news: another pipeline-svc instance may have
/// stored the change, and its notifications do not reach this process.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What a [`Source`] has for the stream now.
#[derive(Debug)]
pub enum Step {
    /// Bytes to send; ask again at once (there may be more).
    Send(Bytes),
    /// Bytes to send, read by this call, with nothing more stored when they were read: ask
    /// again after the next change (or recheck). Spares the read that would only find
    /// nothing: a busy run's follower reads about once per change instead of twice
    /// (bench/FINDINGS.md #32).
    SendAndWait(Bytes),
    /// Nothing new yet: wait for a change, then ask again.
    Wait,
    /// Nothing more will come: end the stream.
    End,
}

/// Something a stream follows. `next` is asked again after every [`Step::Send`], and after a
/// wait following every [`Step::Wait`] and [`Step::SendAndWait`]. The changes notified before
/// each call are dropped: what it reads covers them.
pub trait Source: Send + 'static {
    /// What to do now. An error ends the stream (the client sees a cut body).
    fn next(&mut self) -> impl Future<Output = Result<Step, std::io::Error>> + Send;
}

/// Changes of one id (a job or a run), subscribed to before the source's first read, so a
/// change between that read and the wait is not missed.
pub struct Watch {
    updates: broadcast::Receiver<Uuid>,
    id: Uuid,
}

impl Watch {
    /// Subscribes to the changes of `id` on `sender`.
    pub fn subscribe(sender: &broadcast::Sender<Uuid>, id: Uuid) -> Self {
        Self {
            updates: sender.subscribe(),
            id,
        }
    }

    /// Drops the changes notified so far (a read about to start covers them).
    fn drain(&mut self) {
        while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = self.updates.try_recv() {
        }
    }

    /// Waits until `id` changed, changes were missed (lagged), or `deadline` passed.
    async fn changed_or(&mut self, deadline: Instant) {
        let id = self.id;
        let updates = &mut self.updates;
        let _ = tokio::time::timeout_at(deadline, async {
            loop {
                match updates.recv().await {
                    Ok(changed) if changed == id => return,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return,
                    // The service is stopping: only the deadline can end this wait.
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
    }
}

/// A comment sent on a stream that has been idle for `every`, so that proxies in front keep
/// it open (SSE: a line starting with `:` is ignored by clients).
#[derive(Debug, Clone)]
pub struct KeepAlive {
    /// Idle time before a comment.
    pub every: Duration,
    /// The comment's bytes.
    pub comment: Bytes,
}

impl KeepAlive {
    /// `: keep-alive` after `every` of silence.
    pub fn sse(every: Duration) -> Self {
        Self {
            every,
            comment: Bytes::from_static(b": keep-alive\n\n"),
        }
    }
}

struct Driver<S> {
    source: S,
    watch: Watch,
    keep_alive: Option<KeepAlive>,
    /// When the stream last sent something (or started).
    last_sent: Instant,
    /// The source said [`Step::SendAndWait`]: wait for a change before asking it again.
    wait_first: bool,
    done: bool,
}

/// The body stream of a follower: the source's bytes, keep-alive comments while it waits, and
/// the end when the source ends.
pub fn stream<S: Source>(
    source: S,
    watch: Watch,
    keep_alive: Option<KeepAlive>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let start = Driver {
        source,
        watch,
        keep_alive,
        last_sent: Instant::now(),
        wait_first: false,
        done: false,
    };
    futures::stream::unfold(start, |mut d| async move {
        if d.done {
            return None;
        }
        loop {
            if !std::mem::take(&mut d.wait_first) {
                d.watch.drain();
                match d.source.next().await {
                    Ok(Step::Send(bytes)) => {
                        d.last_sent = Instant::now();
                        return Some((Ok(bytes), d));
                    }
                    Ok(Step::SendAndWait(bytes)) => {
                        d.last_sent = Instant::now();
                        d.wait_first = true;
                        return Some((Ok(bytes), d));
                    }
                    Ok(Step::End) => return None,
                    Ok(Step::Wait) => {}
                    Err(e) => {
                        d.done = true;
                        return Some((Err(e), d));
                    }
                }
            }
            let recheck = Instant::now() + RECHECK;
            let Some(ka) = d.keep_alive.clone() else {
                d.watch.changed_or(recheck).await;
                continue;
            };
            let due = d.last_sent + ka.every;
            d.watch.changed_or(recheck.min(due)).await;
            if Instant::now() >= due {
                d.last_sent = Instant::now();
                return Some((Ok(ka.comment), d));
            }
        }
    })
}
