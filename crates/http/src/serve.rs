//! Accepting connections.

use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// A listener whose accepted connections send without Nagle's delay (`TCP_NODELAY`).
///
/// axum's `serve` leaves Nagle's algorithm on. A streamed answer (a followed event stream or
/// log) writes small pieces one after another, and with Nagle on each piece after the first
/// waits for the peer to acknowledge the previous one, which a peer holding back its ACK
/// (Linux: up to 40 ms) turns into a 40 ms stall per piece on every hop.
pub fn no_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_no_delay)
}

fn set_no_delay(tcp: &mut TcpStream) {
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
