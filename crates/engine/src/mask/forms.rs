//! The forms of a secret value that masking looks for (SPEC §10): the value, each line of a
//! multi-line value, its base64 (standard and URL-safe, padded or not, and the parts of it that
//! do not depend on the bytes around the value in a longer base64 stream), its
//! percent-encodings and its hex. docs/SECURITY.md says what this catches and what it cannot.

/// Lines of a multi-line value shorter than this are not masked on their own: they would
/// match too much of an ordinary log.
pub const MIN_LINE: usize = 8;

/// Base64 parts shorter than this are left out (a value of 8 bytes or more never has one).
const MIN_CORE: usize = 8;

/// The standard base64 alphabet (RFC 4648 §4).
pub const STD_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// The URL-safe base64 alphabet (RFC 4648 §5).
pub const URL_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Every form of `value` to mask; empty for an empty value. May hold duplicates.
pub fn forms(value: &[u8]) -> Vec<Vec<u8>> {
    if value.is_empty() {
        return Vec::new();
    }
    let mut out = vec![value.to_vec()];
    if value.contains(&b'\n') {
        for line in value.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() >= MIN_LINE {
                out.push(line.to_vec());
            }
        }
    }
    for alphabet in [STD_ALPHABET, URL_ALPHABET] {
        out.push(base64(value, alphabet, true));
        out.push(base64(value, alphabet, false));
        for shift in 0..3 {
            let core = base64_core(value, alphabet, shift);
            if core.len() >= MIN_CORE {
                out.push(core);
            }
        }
    }
    out.push(hex(value, b"0123456789abcdef"));
    out.push(hex(value, b"0123456789ABCDEF"));
    for upper in [true, false] {
        out.push(percent(value, is_unreserved, upper, false));
        out.push(percent(value, is_uri_component, upper, false));
        out.push(percent(value, is_unreserved, upper, true));
    }
    out
}

/// Base64 of `data` with `alphabet`, with or without `=` padding.
pub fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = group.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
            } else if pad {
                out.push(b'=');
            }
        }
    }
    out
}

/// The base64 characters that depend on `value` alone when it starts `shift` bytes (mod 3)
/// into a longer base64-encoded stream: the characters mixing in the bytes before it (2 when
/// shift is 1, 3 when it is 2) and the last one, mixing in the byte after it, are cut off.
pub fn base64_core(value: &[u8], alphabet: &[u8; 64], shift: usize) -> Vec<u8> {
    let mut data = vec![0u8; shift];
    data.extend_from_slice(value);
    let encoded = base64(&data, alphabet, false);
    let lead = [0, 2, 3][shift % 3];
    let tail = usize::from(!data.len().is_multiple_of(3));
    if encoded.len() < lead + tail {
        return Vec::new();
    }
    encoded[lead..encoded.len() - tail].to_vec()
}

fn hex(data: &[u8], digits: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    for b in data {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 15)]);
    }
    out
}

/// RFC 3986's unreserved characters, which curl's `--data-urlencode` keeps.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// The characters JavaScript's `encodeURIComponent` keeps.
fn is_uri_component(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'!' | b'*' | b'\'' | b'(' | b')')
}

/// `%XX` for every byte `keep` refuses; `plus`: a space is `+` (form encoding).
fn percent(data: &[u8], keep: fn(u8) -> bool, upper: bool, plus: bool) -> Vec<u8> {
    let digits = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        if keep(b) {
            out.push(b);
        } else if plus && b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 15)],
            ]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{STD_ALPHABET as STD, URL_ALPHABET as URL, base64, base64_core, forms};

    #[test]
    fn base64_matches_the_rfc_4648_test_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes(), STD, true), enc.as_bytes());
            assert_eq!(
                base64(plain.as_bytes(), STD, false),
                enc.trim_end_matches('=').as_bytes()
            );
        }
        assert_eq!(base64(&[0xfb, 0xff], URL, true), b"-_8=");
        assert_eq!(base64(&[0xfb, 0xff], STD, true), b"+/8=");
    }

    #[test]
    fn each_core_is_in_the_base64_of_the_value_at_its_shift_whatever_surrounds_it() {
        let value = b"s3cr3t-token-value";
        for shift in 0..3 {
            let core = base64_core(value, STD, shift);
            for (before, after) in [(0u8, 0u8), (0xff, 0xff), (b'x', b'\n')] {
                let mut data = vec![before; shift + 3];
                data.extend_from_slice(value);
                data.extend_from_slice(&[after; 4]);
                let enc = base64(&data, STD, true);
                assert!(
                    enc.windows(core.len()).any(|w| w == core.as_slice()),
                    "shift {shift}"
                );
            }
        }
    }

    #[test]
    fn a_multi_line_value_masks_its_long_lines_only() {
        let f = forms(b"first line is long\r\nshort\nsecond-long-line");
        assert!(f.contains(&b"first line is long".to_vec()));
        assert!(f.contains(&b"second-long-line".to_vec()));
        assert!(!f.contains(&b"short".to_vec()));
        let f = forms(b"a b/c");
        assert!(f.contains(&b"a%20b%2Fc".to_vec()));
        assert!(f.contains(&b"a%20b%2fc".to_vec()));
        assert!(f.contains(&b"a+b%2Fc".to_vec()));
        assert!(f.contains(&b"6120622f63".to_vec()));
        assert!(forms(b"").is_empty());
    }
}
