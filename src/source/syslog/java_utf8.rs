//! What a Java `new String(bytes)` then `getBytes()` (UTF-8 both ways) does to bytes:
//! each malformed sequence becomes U+FFFD (EF BF BD), sized as the JDK's decoder sizes
//! malformed input, which is not always the "maximal subpart" rule of
//! `String::from_utf8_lossy` (an encoded surrogate, ED A0 80, is one replacement in Java
//! and three in Rust). Valid UTF-8, BOMs included, comes back unchanged.

use std::borrow::Cow;

const REPL: &[u8] = "\u{FFFD}".as_bytes();

fn cont(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// `bytes` after the round trip; borrowed when they are valid UTF-8.
pub(crate) fn round_trip(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Err(e) = std::str::from_utf8(bytes) else {
        return Cow::Borrowed(bytes);
    };
    let mut out = Vec::with_capacity(bytes.len() + 8);
    out.extend_from_slice(&bytes[..e.valid_up_to()]);
    let mut i = e.valid_up_to();
    while i < bytes.len() {
        let rest = &bytes[i..];
        match std::str::from_utf8(rest) {
            Ok(_) => {
                out.extend_from_slice(rest);
                break;
            }
            Err(e) if e.valid_up_to() > 0 => {
                out.extend_from_slice(&rest[..e.valid_up_to()]);
                i += e.valid_up_to();
                continue;
            }
            Err(_) => {}
        }
        // `rest` starts with a malformed sequence: how many bytes the JDK replaces.
        let n = malformed_len(rest);
        out.extend_from_slice(REPL);
        i += n;
    }
    Cow::Owned(out)
}

/// The length of the malformed sequence at the start of `s` (which is not valid UTF-8
/// there), as the JDK's UTF-8 decoder counts it.
fn malformed_len(s: &[u8]) -> usize {
    let b1 = s[0];
    let len = s.len();
    match b1 {
        0xC2..=0xDF => 1,
        0xE0..=0xEF => {
            if len < 3 {
                // Too short: one replacement for the lot, unless the second byte is
                // already wrong.
                if len > 1 && malformed3_2(b1, s[1]) {
                    return 1;
                }
                return len;
            }
            let (b2, b3) = (s[1], s[2]);
            if malformed3_2(b1, b2) || !cont(b3) {
                // The JDK's malformedN for three-byte leads.
                if (b1 == 0xE0 && b2 & 0xE0 == 0x80) || !cont(b2) {
                    1
                } else {
                    2
                }
            } else {
                // Well formed but a surrogate (ED A0..BF xx): all three bytes.
                3
            }
        }
        0xF0..=0xF7 => {
            if len < 4 {
                if b1 > 0xF4 || (len > 1 && malformed4_2(b1, s[1])) {
                    return 1;
                }
                if len > 2 && !cont(s[2]) {
                    return 2;
                }
                return len;
            }
            let (b2, b3) = (s[1], s[2]);
            if b1 > 0xF4 || malformed4_2(b1, b2) {
                1
            } else if !cont(b3) {
                2
            } else {
                3
            }
        }
        _ => 1,
    }
}

fn malformed3_2(b1: u8, b2: u8) -> bool {
    (b1 == 0xE0 && b2 & 0xE0 == 0x80) || !cont(b2)
}

fn malformed4_2(b1: u8, b2: u8) -> bool {
    (b1 == 0xF0 && !(0x90..=0xBF).contains(&b2)) || (b1 == 0xF4 && b2 & 0xF0 != 0x80) || !cont(b2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(b: &[u8]) -> Vec<u8> {
        round_trip(b).into_owned()
    }

    #[test]
    fn valid_utf8_and_boms_are_kept() {
        assert!(matches!(
            round_trip(b"\xEF\xBB\xBFhi \xC3\xA9"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn malformed_sequences_become_one_replacement_each() {
        assert_eq!(rt(b"a\xFFb"), "a\u{FFFD}b".as_bytes());
        // An encoded surrogate is one replacement in the JDK.
        assert_eq!(rt(b"\xED\xA0\x80x"), "\u{FFFD}x".as_bytes());
        assert_eq!(rt(b"\xE2\x80"), "\u{FFFD}".as_bytes());
        assert_eq!(rt(b"\xC0\x80"), "\u{FFFD}\u{FFFD}".as_bytes());
    }
}
