//! Round-trip latency of sqlx 0.8.6 vs 0.9.0 (Postgres over TCP), to check
//! whether 0.9.0's missing `set_nodelay(true)` costs Nagle + delayed-ACK stalls.
//!
//! Usage: DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres \
//!        cargo run --release -- [ITERATIONS=300] [ROUNDS=5]
//!
//! Three connections are measured, one `PgConnection` each:
//!   * `0.8.6`            — sqlx 0.8.6 as shipped
//!   * `0.9.0`            — sqlx 0.9.0 as shipped
//!   * `0.9.0+nodelay`    — sqlx 0.9.0, with TCP_NODELAY set on its socket by
//!                          this program after connecting (fd hack, see below)
//! Versions are interleaved: every round runs every operation for every
//! connection (ITERATIONS/ROUNDS times each), rotating which goes first.

use std::collections::BTreeSet;
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

const OPS: [&str; 6] = [
    "SELECT 1",
    "SELECT $1::int8 + 1",
    "tx: BEGIN; INSERT 100 B; COMMIT",
    "INSERT 16 KiB bytea",
    "SELECT repeat('a', 8153)",
    "INSERT 256 KiB bytea",
];
const WARMUP: usize = 20;

/// Open TCP sockets of this process (fd numbers).
fn tcp_fds() -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        // Borrow the fd as a std TcpStream without taking ownership.
        let s = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
        if s.peer_addr().is_ok() {
            out.insert(fd);
        }
    }
    out
}

fn with_fd<R>(fd: i32, f: impl FnOnce(&TcpStream) -> R) -> R {
    let s = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    f(&s)
}

/// Connect, returning the connection and the fd of the TCP socket it opened.
macro_rules! connect {
    ($sqlx:ident, $url:expr) => {{
        use $sqlx::Connection;
        let before = tcp_fds();
        let conn = $sqlx::PgConnection::connect($url).await.expect("connect");
        let new: Vec<i32> = tcp_fds().difference(&before).copied().collect();
        assert_eq!(new.len(), 1, "expected exactly one new TCP socket, got {new:?}");
        (conn, new[0])
    }};
}

/// Run operation `op` once on `conn`; `i` makes ids unique.
macro_rules! run_op {
    ($sqlx:ident, $conn:expr, $op:expr, $i:expr, $p100:expr, $p16k:expr, $p256k:expr) => {{
        use $sqlx::{Connection, Row};
        let conn: &mut $sqlx::PgConnection = $conn;
        let i: i64 = $i;
        match $op {
            0 => {
                let r = $sqlx::query("SELECT 1").fetch_one(&mut *conn).await.unwrap();
                assert_eq!(r.get::<i32, _>(0), 1);
            }
            1 => {
                let r = $sqlx::query("SELECT $1::int8 + 1")
                    .bind(i)
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(r.get::<i64, _>(0), i + 1);
            }
            2 => {
                let mut tx = conn.begin().await.unwrap();
                $sqlx::query("INSERT INTO nd_t (id, data) VALUES ($1, $2)")
                    .bind(i)
                    .bind($p100)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            3 => {
                $sqlx::query("INSERT INTO nd_t (id, data) VALUES ($1, $2)")
                    .bind(i)
                    .bind($p16k)
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
            4 => {
                let r = $sqlx::query("SELECT repeat('a', 8153)")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(r.get::<String, _>(0).len(), 8153);
            }
            5 => {
                $sqlx::query("INSERT INTO nd_t (id, data) VALUES ($1, $2)")
                    .bind(i)
                    .bind($p256k)
                    .execute(&mut *conn)
                    .await
                    .unwrap();
            }
            _ => unreachable!(),
        }
    }};
}

macro_rules! setup {
    ($sqlx:ident, $conn:expr) => {{
        let conn: &mut $sqlx::PgConnection = $conn;
        $sqlx::query("CREATE TEMP TABLE nd_t (id bigint, data bytea)")
            .execute(&mut *conn)
            .await
            .unwrap();
    }};
}

macro_rules! truncate {
    ($sqlx:ident, $conn:expr) => {{
        let conn: &mut $sqlx::PgConnection = $conn;
        $sqlx::query("TRUNCATE nd_t").execute(&mut *conn).await.unwrap();
    }};
}

/// Positive control, independent of sqlx: a raw Postgres protocol client that
/// sends each simple `Query` in TWO write() calls (5-byte header, then body)
/// before reading the reply. That write-write-read pattern is what Nagle +
/// delayed ACK punishes; it shows whether this host/kernel exhibits the stall.
fn raw_split_write_control(host: &str, port: u16, user: &str, db: &str, nodelay: bool, n: usize) -> Vec<Duration> {
    use std::io::{Read, Write};
    fn read_until_z(s: &mut TcpStream) {
        loop {
            let mut hdr = [0u8; 5];
            s.read_exact(&mut hdr).unwrap();
            let len = u32::from_be_bytes(hdr[1..5].try_into().unwrap()) as usize - 4;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).unwrap();
            assert_ne!(hdr[0], b'E', "server error: {}", String::from_utf8_lossy(&body));
            if hdr[0] == b'Z' {
                return;
            }
        }
    }
    let mut s = TcpStream::connect((host, port)).unwrap();
    s.set_nodelay(nodelay).unwrap();
    let mut params = Vec::new();
    for (k, v) in [("user", user), ("database", db)] {
        params.extend_from_slice(k.as_bytes());
        params.push(0);
        params.extend_from_slice(v.as_bytes());
        params.push(0);
    }
    params.push(0);
    let mut startup = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(&params);
    s.write_all(&startup).unwrap();
    read_until_z(&mut s);
    let body = b"SELECT 1\0";
    let mut hdr = vec![b'Q'];
    hdr.extend_from_slice(&((4 + body.len()) as u32).to_be_bytes());
    let mut out = Vec::new();
    for i in 0..n + 5 {
        let t = Instant::now();
        s.write_all(&hdr).unwrap();
        s.write_all(body).unwrap();
        read_until_z(&mut s);
        if i >= 5 {
            out.push(t.elapsed());
        }
    }
    s.write_all(&[b'X', 0, 0, 0, 4]).unwrap();
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    // nearest-rank percentile
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank - 1].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("set DATABASE_URL");
    let mut args = std::env::args().skip(1);
    let iters: usize = args.next().map(|s| s.parse().expect("ITERATIONS")).unwrap_or(300);
    let rounds: usize = args.next().map(|s| s.parse().expect("ROUNDS")).unwrap_or(5);
    let per_round = iters.div_ceil(rounds);

    let p100 = vec![0xabu8; 100];
    let p16k = vec![0xcdu8; 16 * 1024];
    let p256k = vec![0xefu8; 256 * 1024];

    let (mut c08, fd08) = connect!(sqlx08, &url);
    let (mut c09, fd09) = connect!(sqlx09, &url);
    let (mut c09n, fd09n) = connect!(sqlx09, &url);
    // sqlx 0.9.0 has no option/hook for this; set it on the raw fd ourselves.
    with_fd(fd09n, |s| s.set_nodelay(true).unwrap());

    let names = ["0.8.6", "0.9.0", "0.9.0+nodelay"];
    let fds = [fd08, fd09, fd09n];
    println!("iterations per op: {}  rounds: {rounds}  warm-up: {WARMUP}", per_round * rounds);
    for (n, fd) in names.iter().zip(fds) {
        let (nd, local, peer) = with_fd(fd, |s| {
            (s.nodelay().unwrap(), s.local_addr().unwrap(), s.peer_addr().unwrap())
        });
        println!("{n:>14}: fd {fd}  {local} -> {peer}  getsockopt(TCP_NODELAY) = {nd}");
    }

    setup!(sqlx08, &mut c08);
    setup!(sqlx09, &mut c09);
    setup!(sqlx09, &mut c09n);

    // Warm-up: prepares/caches every statement on every connection.
    for op in 0..OPS.len() {
        for w in 0..WARMUP as i64 {
            run_op!(sqlx08, &mut c08, op, w, &p100[..], &p16k[..], &p256k[..]);
            run_op!(sqlx09, &mut c09, op, w, &p100[..], &p16k[..], &p256k[..]);
            run_op!(sqlx09, &mut c09n, op, w, &p100[..], &p16k[..], &p256k[..]);
        }
    }

    // samples[version][op]
    let mut samples: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); OPS.len()]; names.len()];
    let mut id: i64 = 1_000;
    for round in 0..rounds {
        for op in 0..OPS.len() {
            for k in 0..names.len() {
                let v = (k + round) % names.len(); // rotate who goes first
                for _ in 0..per_round {
                    id += 1;
                    let t = Instant::now();
                    match v {
                        0 => run_op!(sqlx08, &mut c08, op, id, &p100[..], &p16k[..], &p256k[..]),
                        1 => run_op!(sqlx09, &mut c09, op, id, &p100[..], &p16k[..], &p256k[..]),
                        _ => run_op!(sqlx09, &mut c09n, op, id, &p100[..], &p16k[..], &p256k[..]),
                    }
                    samples[v][op].push(t.elapsed());
                }
            }
        }
        truncate!(sqlx08, &mut c08);
        truncate!(sqlx09, &mut c09);
        truncate!(sqlx09, &mut c09n);
    }

    // Connection establishment (no per-connection hack possible before the
    // handshake, so only the two stock versions): time connect(), close untimed.
    let mut conn_samples: Vec<Vec<Duration>> = vec![Vec::new(), Vec::new()];
    for round in 0..rounds {
        for k in 0..2 {
            let v = (k + round) % 2;
            for _ in 0..per_round {
                let t = Instant::now();
                if v == 0 {
                    use sqlx08::Connection;
                    let c = sqlx08::PgConnection::connect(&url).await.unwrap();
                    conn_samples[0].push(t.elapsed());
                    c.close().await.unwrap();
                } else {
                    use sqlx09::Connection;
                    let c = sqlx09::PgConnection::connect(&url).await.unwrap();
                    conn_samples[1].push(t.elapsed());
                    c.close().await.unwrap();
                }
            }
        }
    }

    println!();
    println!("| operation | version | n | median µs | p90 µs | p99 µs | max µs | ≥30 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for op in 0..OPS.len() {
        for v in 0..names.len() {
            let mut s = samples[v][op].clone();
            s.sort();
            let slow = s.iter().filter(|d| d.as_millis() >= 30).count();
            println!(
                "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                OPS[op],
                names[v],
                s.len(),
                pct(&s, 50.0),
                pct(&s, 90.0),
                pct(&s, 99.0),
                s.last().unwrap().as_secs_f64() * 1e6,
                slow
            );
        }
    }

    for v in 0..2 {
        let mut s = conn_samples[v].clone();
        s.sort();
        let slow = s.iter().filter(|d| d.as_millis() >= 30).count();
        println!(
            "| connect (trust, no TLS) | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            names[v],
            s.len(),
            pct(&s, 50.0),
            pct(&s, 90.0),
            pct(&s, 99.0),
            s.last().unwrap().as_secs_f64() * 1e6,
            slow
        );
    }

    // Positive control (raw client, not sqlx), 30 queries each.
    let opts: sqlx09::postgres::PgConnectOptions = url.parse().unwrap();
    let db = opts.get_database().unwrap_or(opts.get_username()).to_string();
    for nd in [false, true] {
        let mut s = raw_split_write_control(opts.get_host(), opts.get_port(), opts.get_username(), &db, nd, 30);
        s.sort();
        let slow = s.iter().filter(|d| d.as_millis() >= 30).count();
        println!(
            "| control: raw client, Query split in 2 writes | TCP_NODELAY={} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            nd,
            s.len(),
            pct(&s, 50.0),
            pct(&s, 90.0),
            pct(&s, 99.0),
            s.last().unwrap().as_secs_f64() * 1e6,
            slow
        );
    }

    use sqlx08::Connection as _;
    c08.close().await.unwrap();
    {
        use sqlx09::Connection as _;
        c09.close().await.unwrap();
        c09n.close().await.unwrap();
    }
}
