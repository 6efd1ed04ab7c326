//! Properties of the masker: streaming in any pieces gives what masking the whole gives, no
//! value survives, nothing else changes, and only a possible start of a value is held back.

use crate::mask::forms::{STD_ALPHABET, base64, base64_core, forms};
use crate::mask::{MASK, MaskStream, Masker};
use proptest::prelude::*;
use std::sync::Arc;

fn masker(values: &[Vec<u8>]) -> Arc<Masker> {
    match Masker::new(values) {
        Ok(Some(m)) => m,
        other => panic!("a masker for non-empty values: {other:?}"),
    }
}

/// Pushes `data` split at `cuts` (positions, any order), checking after each push that what
/// is held back could still start a pattern.
fn stream(m: &Arc<Masker>, data: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(data.len());
    let mut s = MaskStream::new(m.clone());
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        s.push(&data[at..c], &mut out);
        at = c;
        let held = &s.held;
        assert!(
            held.is_empty()
                || m.patterns
                    .iter()
                    .any(|p| p.len() > held.len() && p.starts_with(held)),
            "held back {} bytes that cannot start a pattern",
            held.len()
        );
    }
    s.finish(&mut out);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z0-9]{8,24}".prop_map(String::into_bytes),
        "[a-z]{8,12}\n[a-z0-9]{8,12}".prop_map(String::into_bytes),
    ]
}

/// Bytes in no form of a value made by [`value`].
const FILLER: &[u8] = b" ,;:#@&<>|\t{}^`\"$?";

#[test]
fn a_value_split_in_two_writes_is_masked() {
    let m = masker(&[b"hunter2-hunter2".to_vec()]);
    let got = stream(&m, b"token: hunter2-hunter2 done\n", &[12]);
    assert_eq!(got, b"token: [MASKED] done\n");
    let mut s = MaskStream::new(m.clone());
    let mut out = Vec::new();
    s.push(b"ok hunt", &mut out);
    assert_eq!(out, b"ok ", "only the possible start is held back");
    s.push(b"ing\n", &mut out);
    assert_eq!(out, b"ok hunting\n", "released once it cannot be a value");
}

#[test]
fn the_longest_form_wins_and_encodings_are_masked() {
    let m = masker(&[b"my secret/value".to_vec()]);
    let b64 = base64(b"my secret/value", STD_ALPHABET, true);
    let mut data = b"b64=".to_vec();
    data.extend_from_slice(&b64);
    data.extend_from_slice(b" hex=6d7920736563726574 url=my%20secret%2Fvalue");
    data.extend_from_slice(b" js=my%20secret%2fvalue form=my+secret%2Fvalue");
    data.extend_from_slice(b" hex=6d7920736563726574            2f76616c7565");
    let got = m.mask_all(&data);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "b64=[MASKED] hex=6d7920736563726574 url=[MASKED] js=[MASKED] form=[MASKED] hex=6d7920736563726574            2f76616c7565"
    );
    let hex: String = b"my secret/value"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(m.mask_str(&format!("<{hex}>")), "<[MASKED]>");
}

proptest! {
    /// Any output, cut anywhere: the same as masking it whole.
    #[test]
    fn streaming_in_any_pieces_equals_masking_the_whole(
        values in proptest::collection::vec(value(), 1..4),
        parts in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..30).prop_map(|b| (b, None)),
                (0usize..4, any::<prop::sample::Index>()).prop_map(|(v, f)| (Vec::new(), Some((v, f)))),
            ],
            0..20,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let m = masker(&values);
        let mut data = Vec::new();
        for (bytes, form) in &parts {
            data.extend_from_slice(bytes);
            if let Some((v, f)) = form {
                let fs = forms(&values[v % values.len()]);
                data.extend_from_slice(&fs[f.index(fs.len())]);
            }
        }
        prop_assert_eq!(stream(&m, &data, &cuts), m.mask_all(&data));
    }

    /// Values and their forms between filler: each becomes [MASKED], the filler is unchanged,
    /// and no value is left.
    #[test]
    fn every_form_is_masked_and_nothing_else_changes(
        values in proptest::collection::vec(value(), 1..4),
        parts in proptest::collection::vec(
            (proptest::collection::vec(proptest::sample::select(FILLER), 1..10), 0usize..4, any::<prop::sample::Index>()),
            0..12,
        ),
        tail in proptest::collection::vec(proptest::sample::select(FILLER), 0..10),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let m = masker(&values);
        let (mut data, mut want) = (Vec::new(), Vec::new());
        for (filler, v, f) in &parts {
            data.extend_from_slice(filler);
            want.extend_from_slice(filler);
            let fs = forms(&values[v % values.len()]);
            data.extend_from_slice(&fs[f.index(fs.len())]);
            want.extend_from_slice(MASK);
        }
        data.extend_from_slice(&tail);
        want.extend_from_slice(&tail);
        let got = stream(&m, &data, &cuts);
        for v in &values {
            prop_assert!(!contains(&got, v));
        }
        prop_assert_eq!(got, want);
    }

    /// A value inside a longer base64 stream, at any alignment and between any bytes: the
    /// part of the encoding that depends on the value alone is masked.
    #[test]
    fn a_value_inside_a_longer_base64_stream_is_masked(
        v in value(),
        before in proptest::collection::vec(any::<u8>(), 0..9),
        after in proptest::collection::vec(any::<u8>(), 0..9),
    ) {
        let m = masker(std::slice::from_ref(&v));
        let mut plain = before.clone();
        plain.extend_from_slice(&v);
        plain.extend_from_slice(&after);
        let encoded = base64(&plain, STD_ALPHABET, true);
        let got = m.mask_all(&encoded);
        prop_assert!(contains(&got, MASK));
        let core = base64_core(&v, STD_ALPHABET, before.len() % 3);
        prop_assert!(!contains(&got, &core));
    }
}

/// The output buffer masks before its limit, its memory and its spool file see anything.
#[tokio::test]
async fn the_buffer_masks_before_the_limit_and_the_spool() {
    let secret = b"hunter2-hunter2".to_vec();
    let m = masker(std::slice::from_ref(&secret));
    let path = std::env::temp_dir().join(format!("gitweave-mask-spool-{}.log", std::process::id()));
    let b = crate::OutputBuffer::new(4)
        .with_spool(path.clone())
        .with_limit(1000)
        .with_masker(Some(m));
    // Nobody reads: past 4 bytes everything goes to the spool file.
    for _ in 0..20 {
        b.write(b"a=hunter2-hu").await;
        b.write(b"nter2;").await;
    }
    b.write(b"end hunter2-").await;
    let on_disk = std::fs::read(&path).unwrap_or_default();
    assert!(!on_disk.is_empty(), "the spool was used");
    assert!(
        !contains(&on_disk, &secret[..8]),
        "no part of the value on disk"
    );
    b.close();
    let mut got = Vec::new();
    while let Some(chunk) = b.take(7).await {
        got.extend_from_slice(&chunk);
    }
    let want = format!("{}end hunter2-", "a=[MASKED];".repeat(20));
    assert_eq!(String::from_utf8_lossy(&got), want);
    assert_eq!(
        b.written(),
        want.len() as u64,
        "the limit counts masked bytes"
    );

    let b = crate::OutputBuffer::new(1024)
        .with_limit(10)
        .with_masker(Masker::new([&secret]).ok().flatten());
    b.write(b"xx hunter2-hunter2 yy").await;
    b.close();
    let mut got = Vec::new();
    while let Some(chunk) = b.take(1024).await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "xx [MASKED\n[gitweave] log truncated at 10 bytes; 4 bytes dropped\n"
    );
}
