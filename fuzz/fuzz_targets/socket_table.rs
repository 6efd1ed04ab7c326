//! `gitweave_engine::ready::listening` reads a socket table (`/proc/net/tcp{,6}`) that an exec
//! in a container hands over, so any bytes: it never panics, its answer does not depend on
//! lines it cannot read (appending junk never turns a "no" into a "yes"), and a listening line
//! appended for the port is always found.
#![no_main]

use gitweave_engine::ready::listening;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (port, table) = input;
    let before = listening(table, port);
    let mut junk = table.to_vec();
    junk.extend_from_slice(b"\n0: zz:ZZZZ 00000000:0000 0A\nnot a line at all\n");
    assert_eq!(listening(&junk, port), before, "unreadable lines change nothing");
    let mut with = table.to_vec();
    with.extend_from_slice(format!("\n  9: 00000000:{port:04X} 00000000:0000 0A 0 0 0\n").as_bytes());
    assert!(listening(&with, port), "a listening line for the port is found");
});
