//! Accepting connections.
//!
//! [`no_delay`] suits `axum::serve`. [`serve`] is the hardened loop for a listener that faces
//! untrusted clients (the gateway): HTTP/1.1 with keep-alive, a deadline for each request's
//! headers (a connection that has not sent them in time is closed, idle keep-alive ones too),
//! caps on open connections in all and per client, `TCP_NODELAY`, `ConnectInfo<SocketAddr>`
//! on every request, and a graceful stop that lets requests in flight finish.
//!
//! The accept loop never waits on a connection: it admits or closes, then hands the
//! connection to its own task, so thousands of half-open connections cost a task and a
//! descriptor each and nothing else, and `/healthz` from another client is served at once.

use crate::Metrics;
use crate::conn_limit::{ConnectionLimits, Refusal};
use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::{ListenerExt, TapIo};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The largest request head (request line and headers) a connection may buffer, and the most
/// a response may queue before the connection waits for the client to read: every open
/// connection may hold this much, so with `max_connections` of them it bounds the memory
/// slow clients can pin (10 000 × 32 KiB = 320 MiB).
pub const MAX_BUFFER: usize = 32 * 1024;

/// File descriptors kept aside from connections: the runtime's own, logs, and the idle pool
/// of upstream connections (the gateway keeps up to 256).
const RESERVED_FDS: u64 = 288;

/// How [`serve`] treats connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// A connection that has not sent a request's complete head within this is closed (also
    /// between requests on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Connections open at once; more are closed when accepted.
    pub max_connections: usize,
    /// Connections open at once from one client (an IPv4 address or an IPv6 /64).
    pub max_connections_per_client: usize,
    /// Where `http_connections_open` and `http_connections_refused_total` are counted.
    pub metrics: Metrics,
}

/// The connection cap the process's open-file limit leaves room for: each connection takes a
/// descriptor, and another one upstream while it proxies a request. `wanted` when the limit is
/// unknown or large enough.
pub fn connections_within_fd_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(soft) = limit.current {
            let room = usize::try_from(soft.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX);
            return wanted.min(room.max(1));
        }
    }
    wanted
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets every
/// request in flight finish (idle connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = ConnectionLimits::new(options.max_connections, options.max_connections_per_client);
    let metrics = options.metrics.clone();
    metrics.describe("http_connections_open", "Client connections open now.");
    metrics.describe(
        "http_connections_refused_total",
        "Connections closed when accepted, over the total or the per-client cap.",
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_BUFFER);
    // `true` once the service is asked to stop; every connection task watches it.
    let (stopping, _) = tokio::sync::watch::channel(false);
    // Each connection task holds a receiver; all are dropped when the last one ends.
    let (all_closed, open_conns) = tokio::sync::watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let permit = match limits.admit(remote.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                refused(&metrics, refusal, remote);
                drop(tcp);
                continue;
            }
        };
        set_no_delay(&tcp);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(req)
        });
        let conn = builder.serve_connection(TokioIo::new(tcp), service);
        let mut stop = stopping.subscribe();
        let open_conns = open_conns.clone();
        let metrics = metrics.clone();
        metrics.gauge_add("http_connections_open", 1);
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            let outcome = tokio::select! {
                outcome = conn.as_mut() => outcome,
                // Sent once, when the service stops (the sender outlives every task).
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = outcome {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
            metrics.gauge_add("http_connections_open", -1);
            drop(permit);
            drop(open_conns);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    drop(open_conns);
    tracing::debug!(
        connections = limits.open(),
        "waiting for connections to finish"
    );
    all_closed.closed().await;
}

fn refused(metrics: &Metrics, refusal: Refusal, remote: SocketAddr) {
    metrics.inc(
        "http_connections_refused_total",
        &format!("reason=\"{}\"", refusal.as_str()),
    );
    tracing::debug!(%remote, reason = refusal.as_str(), "connection over its cap closed");
}

/// A failed accept: nothing to do for a connection the peer already dropped; out of
/// descriptors or memory, wait a moment for connections to close (retrying at once would spin).
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A listener whose accepted connections send without Nagle's delay (`TCP_NODELAY`).
///
/// axum's `serve` leaves Nagle's algorithm on. A streamed answer (a followed event stream or
/// log) writes small pieces one after another, and with Nagle on each piece after the first
/// waits for the peer to acknowledge the previous one, which a peer holding back its ACK
/// (Linux: up to 40 ms) turns into a 40 ms stall per piece on every hop.
pub fn no_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_no_delay_mut)
}

fn set_no_delay_mut(tcp: &mut TcpStream) {
    set_no_delay(tcp);
}

fn set_no_delay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY on an accepted connection");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = plain.local_addr().expect("addr");
        let mut listener = no_delay(plain);
        let (accepted, connected) = tokio::join!(listener.accept(), TcpStream::connect(addr));
        let _client = connected.expect("connect");
        let (stream, _) = accepted;
        assert!(stream.nodelay().expect("nodelay"), "TCP_NODELAY is set");
    }
}
