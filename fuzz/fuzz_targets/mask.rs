//! Random output holding secret values and their forms, split at random points → the runner's
//! streaming masker: every form becomes `[MASKED]`, no value survives, every other byte is
//! unchanged, and streaming in pieces gives what masking the whole at once gives (also for
//! arbitrary bytes around the forms).
//!
//! The input: byte 0 says how many values (1–3); each value is a length byte (8–31) and that
//! many bytes, mapped onto `[a-z0-9]`. Each later byte is one step: high bit set, a form of a
//! value (the low bits choose which value and form); else a filler byte no form holds. Bit 6
//! of a step cuts the stream after it. Then, the same steps with arbitrary filler bytes.

#![no_main]

use gitweave_engine::mask::forms::forms;
use gitweave_engine::mask::{MASK, MaskStream, Masker};
use libfuzzer_sys::fuzz_target;

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const FILLER: &[u8] = b" ,;:#@&<>|\t{}^`\"$?";

fn stream(m: &std::sync::Arc<Masker>, pieces: &[Vec<u8>]) -> Vec<u8> {
    let mut s = MaskStream::new(m.clone());
    let mut out = Vec::new();
    for p in pieces {
        s.push(p, &mut out);
    }
    s.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, mut rest)) = data.split_first() else {
        return;
    };
    let mut values = Vec::new();
    for _ in 0..1 + n % 3 {
        let Some((&len, tail)) = rest.split_first() else {
            return;
        };
        let len = 8 + usize::from(len % 24);
        if tail.len() < len {
            return;
        }
        values.push(
            tail[..len]
                .iter()
                .map(|b| ALNUM[usize::from(*b) % ALNUM.len()])
                .collect::<Vec<u8>>(),
        );
        rest = &tail[len..];
    }
    let Ok(Some(m)) = Masker::new(&values) else {
        panic!("no masker for non-empty values");
    };
    let all_forms: Vec<Vec<Vec<u8>>> = values.iter().map(|v| forms(v)).collect();

    for arbitrary in [false, true] {
        let (mut pieces, mut piece, mut want) = (Vec::new(), Vec::new(), Vec::new());
        for &step in rest {
            if step & 0x80 != 0 {
                let pick = usize::from(step & 0x3f);
                let fs = &all_forms[pick % 3 % values.len()];
                piece.extend_from_slice(&fs[pick / 3 % fs.len()]);
                want.extend_from_slice(MASK);
                if !arbitrary {
                    // Forms side by side can make a longer pattern across them: keep them
                    // apart, as the output of separate commands would be.
                    piece.push(b' ');
                    want.push(b' ');
                }
            } else {
                let b = if arbitrary {
                    step
                } else {
                    FILLER[usize::from(step) % FILLER.len()]
                };
                piece.push(b);
                want.push(b);
            }
            if step & 0x40 != 0 {
                pieces.push(std::mem::take(&mut piece));
            }
        }
        pieces.push(piece);
        let got = stream(&m, &pieces);
        assert_eq!(got, m.mask_all(&pieces.concat()), "streaming equals masking the whole");
        if !arbitrary {
            assert_eq!(got, want, "each form masked, nothing else changed");
            for v in &values {
                assert!(!got.windows(v.len()).any(|w| w == v.as_slice()), "a value survived");
            }
        }
    }
});
