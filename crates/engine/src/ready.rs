//! Pure pieces of a service's readiness (SPEC §12): whether the kernel's socket table of the
//! job's network namespace (`/proc/net/tcp` and `/proc/net/tcp6`, as read from inside it)
//! holds a socket listening on a port, and the last lines of a service's output, kept for the
//! job's log when the service does not become ready.
//!
//! The socket table is outside input (a kernel file read through an exec in a container), so
//! [`listening`] accepts any bytes: it never panics, and a line it cannot read is skipped.

use std::collections::VecDeque;

/// `st` of a listening TCP socket in `/proc/net/tcp{,6}`.
const TCP_LISTEN: &str = "0A";

/// Whether `table` (the text of `/proc/net/tcp` and/or `/proc/net/tcp6`, headers included)
/// has a socket in `LISTEN` state on local port `port`, whatever address it is bound to.
///
/// Each data line reads `sl: local_address rem_address st …`, where `local_address` is
/// `<hex address>:<hex port>` and `st` is the state in hex. A connect to `port` on
/// `localhost` (or on the service's name, mapped to `127.0.0.1`) reaches such a socket.
pub fn listening(table: &[u8], port: u16) -> bool {
    let text = String::from_utf8_lossy(table);
    text.lines().any(|line| {
        let mut fields = line.split_ascii_whitespace();
        let (Some(slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        if !slot.ends_with(':') || !state.eq_ignore_ascii_case(TCP_LISTEN) {
            return false;
        }
        let Some((address, hex_port)) = local.rsplit_once(':') else {
            return false;
        };
        !address.is_empty()
            && address.bytes().all(|b| b.is_ascii_hexdigit())
            && hex_port.len() == 4
            && u16::from_str_radix(hex_port, 16).ok() == Some(port)
    })
}

/// The last bytes a service wrote (at most `cap`), from which its last lines are told.
#[derive(Debug)]
pub struct Tail {
    bytes: VecDeque<u8>,
    cap: usize,
}

/// Bytes of a service's output kept for its last lines.
pub const TAIL_BYTES: usize = 8 * 1024;
/// Lines of a service's output put at the end of the job's log when it is not ready.
pub const TAIL_LINES: usize = 20;

impl Default for Tail {
    fn default() -> Self {
        Self::new(TAIL_BYTES)
    }
}

impl Tail {
    /// Keeps the last `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            bytes: VecDeque::with_capacity(cap.min(TAIL_BYTES)),
            cap,
        }
    }

    /// Adds output.
    pub fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.cap)..];
        let over = (self.bytes.len() + data.len()).saturating_sub(self.cap);
        self.bytes.drain(..over.min(self.bytes.len()));
        self.bytes.extend(data);
    }

    /// The last `n` lines kept (a first line cut by the byte cap counts as one), each ending
    /// with a newline; empty when nothing was written.
    pub fn last_lines(&self, n: usize) -> String {
        let (a, b) = self.bytes.as_slices();
        let all = [a, b].concat();
        let text = String::from_utf8_lossy(&all);
        let lines: Vec<&str> = text.lines().collect();
        let mut out = String::new();
        for line in &lines[lines.len().saturating_sub(n)..] {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{Tail, listening};
    use proptest::prelude::*;

    /// From a container with Postgres on 5432 (IPv4 and IPv6) and a connection to it.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1538 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000   999        0 1235 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:C350 06 00000000:00000000 03:00000F3E 00000000     0        0 0 3 0000000000000000
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 999 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn a_listening_socket_is_found_on_its_port_only() {
        assert!(listening(TCP.as_bytes(), 5432));
        assert!(listening(TCP6.as_bytes(), 6379));
        assert!(listening(format!("{TCP}{TCP6}").as_bytes(), 6379));
        // 8080 is only in TIME_WAIT (06), 0xD2A4 is a client's port: neither listens.
        assert!(!listening(TCP.as_bytes(), 8080));
        assert!(!listening(TCP.as_bytes(), 0xD2A4));
        assert!(!listening(TCP.as_bytes(), 6379));
        assert!(!listening(b"", 5432));
        // The header line is not a socket.
        assert!(!listening(
            TCP.lines().next().unwrap_or_default().as_bytes(),
            5432
        ));
    }

    #[test]
    fn lines_it_cannot_read_are_skipped() {
        for junk in [
            "0: 00000000:1538",
            "0 00000000:1538 00000000:0000 0A",
            "0: 1538 00000000:0000 0A",
            "0: :1538 00000000:0000 0A",
            "0: zz:1538 00000000:0000 0A",
            "0: 00000000:15380 00000000:0000 0A",
            "0: 00000000:+538 00000000:0000 0A",
        ] {
            assert!(!listening(junk.as_bytes(), 5432), "{junk}");
        }
        assert!(listening(b"0: 00000000:1538 00000000:0000 0a", 5432));
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_its_cap() {
        let mut t = Tail::new(32);
        assert_eq!(t.last_lines(3), "");
        t.push(b"one\ntwo\nthree\n");
        t.push(b"four\nfi");
        t.push(b"ve\n");
        assert_eq!(t.last_lines(3), "three\nfour\nfive\n");
        assert_eq!(t.last_lines(1), "five\n");
        t.push(&[b'x'; 100]);
        assert_eq!(t.last_lines(5), format!("{}\n", "x".repeat(32)));
    }

    proptest! {
        /// Never a panic on any bytes, and a table is found exactly on the port it lists.
        #[test]
        fn any_bytes_are_read_without_panicking(table in proptest::collection::vec(any::<u8>(), 0..400), port in any::<u16>()) {
            let _ = listening(&table, port);
        }

        #[test]
        fn a_generated_listen_line_is_found_on_its_port(port in 1u16.., other in 1u16.., v6 in any::<bool>()) {
            let address = if v6 { "0".repeat(32) } else { "0100007F".to_owned() };
            let line = format!("   7: {address}:{port:04X} {address}:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n");
            prop_assert!(listening(line.as_bytes(), port));
            prop_assert_eq!(listening(line.as_bytes(), other), other == port);
            let established = line.replace(" 0A ", " 01 ");
            prop_assert!(!listening(established.as_bytes(), port));
        }

        /// What the fuzz target (`fuzz/fuzz_targets/socket_table.rs`) checks, on stable:
        /// unreadable lines change nothing, a listening line for the port is always found.
        #[test]
        fn junk_changes_nothing_and_a_listen_line_is_found(table in proptest::collection::vec(any::<u8>(), 0..400), port in any::<u16>()) {
            let before = listening(&table, port);
            let mut junk = table.clone();
            junk.extend_from_slice(b"\n0: zz:ZZZZ 00000000:0000 0A\nnot a line at all\n");
            prop_assert_eq!(listening(&junk, port), before);
            let mut with = table.clone();
            with.extend_from_slice(format!("\n  9: 00000000:{port:04X} 00000000:0000 0A 0 0 0\n").as_bytes());
            prop_assert!(listening(&with, port));
        }

        /// The tail holds what a whole copy would hold at its end.
        #[test]
        fn the_tail_is_the_end_of_everything_pushed(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..20), cap in 1usize..64) {
            let mut t = Tail::new(cap);
            let mut all = Vec::new();
            for p in &pieces {
                t.push(p);
                all.extend_from_slice(p);
            }
            let kept: Vec<u8> = t.bytes.iter().copied().collect();
            prop_assert_eq!(&kept[..], &all[all.len().saturating_sub(cap)..]);
        }
    }
}
