//! The gateway against clients that hold connections open (SPEC §15): a connection that does
//! not send its headers in time is closed, one client's half-open connections cannot starve
//! another's `/healthz`, connection caps close what is over them at once, a request body
//! that stalls is cut with a 408, and SIGTERM lets a request in flight finish.

use crate::helpers::{Options, bin, free_port, no_runner, spawn_with};
use crate::raw_http::{addr_of, connect_from, parse};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// Reads until the server closes the connection (or resets it), at most `within`; `None` if
/// it is still open then. The bytes read before the close come back.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// `GET /healthz` on a kept-alive connection: writes it and reads exactly one response.
async fn healthz_on(tcp: &mut TcpStream) -> u16 {
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: gitweave\r\n\r\n")
        .await
        .expect("write");
    one_health_answer(tcp).await
}

/// Reads one `/healthz` answer off a kept-alive connection.
async fn one_health_answer(tcp: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let mut buf = [0_u8; 1024];
    // The health answer is small and has a Content-Length: read until its body is in.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("read");
        assert!(n > 0, "closed before answering");
        raw.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&raw).ends_with('}') {
            return parse(&raw).status;
        }
    }
}

/// A fresh connection from `from`, `GET /healthz`, the answer, all within `within`.
async fn healthz_from(from: IpAddr, to: SocketAddr, within: Duration) -> Result<u16, String> {
    let attempt = async {
        let mut tcp = connect_from(from, to).await.map_err(|e| e.to_string())?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: gitweave\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(parse(&raw).status)
    };
    tokio::time::timeout(within, attempt)
        .await
        .map_err(|_| format!("no answer within {} ms", within.as_millis()))?
}

#[tokio::test]
async fn a_connection_that_does_not_send_its_headers_in_time_is_closed() {
    let app = spawn_with(Options {
        gateway: Some(|c| c.header_timeout_ms = 500),
        ..no_runner()
    })
    .await;
    let to = addr_of(&app.gateway);

    // Half a request: the line and one header, never the blank line.
    let started = Instant::now();
    let mut slow = connect_from(CLIENT, to).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: gitweave\r\n")
        .await
        .expect("write");
    let seen = closed_within(&mut slow, Duration::from_secs(5))
        .await
        .expect("closed by the server within 5 s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "closed after {took:?}, before the 500 ms deadline"
    );
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        !seen.contains(" 200 "),
        "an unfinished request was answered: {seen}"
    );

    // Sending nothing at all is the same.
    let mut silent = connect_from(CLIENT, to).await.expect("connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5))
            .await
            .is_some(),
        "a silent connection is closed too"
    );

    // A request whose headers arrive within the deadline, even in pieces, is served, and the
    // connection is kept alive for the next one.
    let mut ok = connect_from(CLIENT, to).await.expect("connect");
    ok.write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    ok.write_all(b"Host: gitweave\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(one_health_answer(&mut ok).await, 200);
    assert_eq!(healthz_on(&mut ok).await, 200, "kept alive");
    // Idle past the deadline, a kept-alive connection is closed as well.
    assert!(
        closed_within(&mut ok, Duration::from_secs(5))
            .await
            .is_some()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn connections_over_a_cap_are_closed_at_once_and_others_are_served() {
    let app = spawn_with(Options {
        gateway: Some(|c| {
            c.max_connections = 5;
            c.max_connections_per_ip = 3;
        }),
        ..no_runner()
    })
    .await;
    let to = addr_of(&app.gateway);
    let ip = |n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n));

    // Three kept-alive connections from one address: its cap.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect_from(ip(2), to).await.expect("connect");
        assert_eq!(healthz_on(&mut tcp).await, 200);
        held.push(tcp);
    }
    let mut fourth = connect_from(ip(2), to).await.expect("the kernel accepts");
    let seen = closed_within(&mut fourth, Duration::from_secs(2))
        .await
        .expect("the fourth connection from one address is closed at once");
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));

    // Another address still gets in, up to the total of five.
    let mut others = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect_from(ip(3), to).await.expect("connect");
        assert_eq!(healthz_on(&mut tcp).await, 200);
        others.push(tcp);
    }
    let mut sixth = connect_from(ip(4), to).await.expect("the kernel accepts");
    assert!(
        closed_within(&mut sixth, Duration::from_secs(2))
            .await
            .is_some(),
        "over the total cap"
    );

    // A closed connection gives its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = healthz_from(ip(4), to, Duration::from_secs(1)).await;
        if r == Ok(200) {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((held, others));
    let metrics = app
        .gateway_get("/metrics")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("http_connections_refused_total{reason=\"per_client\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_connections_refused_total{reason=\"total\"}"),
        "{metrics}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_request_body_that_stalls_is_cut_with_408() {
    let app = spawn_with(Options {
        gateway: Some(|c| c.body_idle_timeout_ms = 300),
        ..no_runner()
    })
    .await;
    let mut tcp = TcpStream::connect(addr_of(&app.gateway))
        .await
        .expect("connect");
    tcp.write_all(
        b"PUT /api/v1/templates/slow HTTP/1.1\r\nHost: gitweave\r\nContent-Type: application/yaml\r\nContent-Length: 100\r\n\r\njobs:",
    )
    .await
    .expect("write");
    let raw = closed_within(&mut tcp, Duration::from_secs(10))
        .await
        .expect("answered and closed within 10 s");
    let r = parse(&raw);
    assert_eq!(r.status, 408, "{}\n{}", r.head, r.body);
    assert_eq!(r.code().as_deref(), Some("request_timeout"));
    // Nothing was stored.
    assert_eq!(app.get("/templates/slow").await.status(), 404);
    app.shutdown().await;
}

/// The gateway binary as a process, with at most `nofile` open files (what systemd and most
/// shells give a service by default is 1024).
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Gateway {
    async fn start(nofile: u32, pipeline: &str) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\""))
            .arg(bin("api-gateway"))
            .env("GATEWAY_ADDR", addr.to_string())
            .env("PIPELINE_SVC_URL", pipeline)
            .env("RUST_LOG", "warn")
            .env_remove("GITWEAVE_API_TOKEN")
            .env_remove("GATEWAY_MAX_CONNECTIONS")
            .env_remove("GATEWAY_MAX_CONNECTIONS_PER_IP")
            .env_remove("GATEWAY_HEADER_TIMEOUT_MS")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start api-gateway");
        let gateway = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while healthz_from(CLIENT, addr, Duration::from_secs(1)).await != Ok(200) {
            assert!(Instant::now() < deadline, "api-gateway did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gateway
    }

    fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("-KILL");
        }
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_thousand_half_open_connections_from_one_address_leave_healthz_fast() {
    // pipeline-svc is not needed for /healthz; nothing listens there.
    let gateway = Gateway::start(1024, &format!("http://127.0.0.1:{}", free_port())).await;
    let mut held = Vec::with_capacity(2000);
    for _ in 0..2000 {
        // The kernel completes a connect even when the gateway closes it right after; one
        // that does not complete within 2 s (a dropped SYN is resent after 1 s) means the
        // listen queue is full: nobody accepts.
        match tokio::time::timeout(Duration::from_secs(2), connect_from(ATTACKER, gateway.addr))
            .await
        {
            Ok(Ok(mut tcp)) => {
                let _ = tcp.write_all(b"GET /healthz HTTP/1.1\r\nHo").await;
                held.push(tcp);
            }
            Ok(Err(_)) => {}
            Err(_) => break,
        }
    }
    for i in 0..5 {
        let r = healthz_from(CLIENT, gateway.addr, Duration::from_millis(100)).await;
        assert_eq!(
            r,
            Ok(200),
            "/healthz attempt {i} with {} half-open connections held",
            held.len()
        );
    }
    assert_eq!(held.len(), 2000, "every connect completed");
    drop(held);
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    let app = spawn_with(no_runner()).await;
    let gateway = Gateway::start(4096, &app.pipeline).await;
    let yaml = format!(
        "jobs:\n  - name: build\n    image: {}\n    script: [\"true\"]\n",
        crate::helpers::image()
    );
    let mut tcp = connect_from(CLIENT, gateway.addr).await.expect("connect");
    let head = format!(
        "PUT /api/v1/templates/inflight HTTP/1.1\r\nHost: gitweave\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        yaml.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp.write_all(&yaml.as_bytes()[..5]).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    gateway.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are no longer served...
    assert!(
        healthz_from(CLIENT, gateway.addr, Duration::from_secs(1))
            .await
            .is_err(),
        "a stopping gateway accepts no new requests"
    );
    // ...but the request in flight finishes.
    tcp.write_all(&yaml.as_bytes()[5..]).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    let r = parse(&raw);
    assert_eq!(r.status, 201, "{}\n{}", r.head, r.body);
    let mut gateway = gateway;
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(gateway.child.try_wait(), Ok(None)) {
        assert!(
            Instant::now() < deadline,
            "the gateway did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gateway
            .child
            .try_wait()
            .ok()
            .flatten()
            .is_some_and(|s| s.success()),
        "a clean exit"
    );
    app.shutdown().await;
}
